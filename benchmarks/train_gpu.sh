#!/usr/bin/env bash
# Step time and MFU of a PixArt-XL/2-sized group-DiT training step (512 px, n = 4, bf16, group attention)
# on one GPU; prints one JSON line per configuration (benchmarks/train_gpu.py). Under 5 minutes on an H100.
# For a GPU host with torch, transformers and accelerate but without diffusers: it installs the wheels
# downloaded beforehand into .whl/ (diffusers 0.42.1 and the pure-Python packages it imports) into
# /tmp/site, and Pillow only if the host has none. Arguments replace the default configurations, e.g.
#   bash benchmarks/train_gpu.sh --device cpu --preset pixart-tiny --steps 3   (a logic check on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=/tmp/site:$PWD
if ! python3 -c "import diffusers" 2>/dev/null; then
    python3 -c "import PIL" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/pillow-*.whl
    python3 -m pip install -q --no-index --no-deps --target /tmp/site $(ls .whl/*.whl | grep -v /pillow-)
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv
if [ $# -eq 0 ]; then
    set -- --groups 4 8 --compile
fi
timeout 270 python3 -m benchmarks.train_gpu "$@"
