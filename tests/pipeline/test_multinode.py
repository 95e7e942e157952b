"""The same commands against a Ray cluster of two nodes (a head and a worker, both on this machine)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from manifests.ledger import read_manifest

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
COMMON = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", "--num-cpus=1", "--block",
          "--object-store-memory=200000000"]  # fmt: skip


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    with open(log, "w") as fh:
        return subprocess.Popen([RAY, "start", *args, *COMMON], stdout=fh, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # fmt: skip


def _wait_for_nodes(address: str, count: int, logs: Path, timeout: float = 300) -> None:
    probe = f"import ray; ray.init(address='{address}'); print(len([n for n in ray.nodes() if n['Alive']]))"
    deadline = time.monotonic() + timeout
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(2)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in sorted(logs.glob("*.log")))
    message = f"the Ray cluster at {address} did not reach {count} nodes"
    raise TimeoutError(f"{message}\n{out.stderr[-2000:]}\n{tails}")


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("ray-logs")
    port = 6390 + os.getpid() % 500
    address = f"127.0.0.1:{port}"
    # Ray's unix sockets live under the temp dir, and their paths must stay under 108 bytes.
    temp_dir = tempfile.mkdtemp(prefix="gdt-ray-", dir="/tmp")
    head = _start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}"],
                  logs / "head.log")  # fmt: skip
    processes = [head]
    try:
        time.sleep(3)
        processes.append(_start([f"--address={address}"], logs / "worker.log"))
        _wait_for_nodes(address, 2, logs)
        yield address
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def gdt(address: str | None, *args: str) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    if address:
        env["RAY_ADDRESS"] = address
    subprocess.run([sys.executable, "-m", "pipeline.cli", *args, "--quiet"], cwd=REPO, env=env, check=True,
                   timeout=600)  # fmt: skip


def outputs(run: Path, stage: str) -> dict[str, str]:
    """Every output file of a stage with its sha256, from the stage's manifest."""
    manifest = read_manifest(run / stage)
    assert manifest is not None, f"{stage} did not finish in {run}"
    return {o.path: o.sha256 for o in manifest.outputs}


@pytest.mark.integration
@pytest.mark.slow
def test_stages_on_two_nodes_give_the_same_tables_as_the_local_run(two_node_cluster, sample_corpus, tmp_path):
    documents = str(sample_corpus / "documents.parquet")
    for name, address in (("local", None), ("cluster", two_node_cluster)):
        run = str(tmp_path / name)
        gdt(address, "extract", "--input", documents, "--run", run, "--set", "extract.docs_per_part=32")
        gdt(address, "embed", "--run", run)
        gdt(address, "dedup", "--run", run)
        gdt(address, "shard", "--run", run, "--set", "shard.groups_per_shard=16")
    for stage in ("extract", "embed", "dedup", "shard"):
        assert outputs(tmp_path / "cluster", stage) == outputs(tmp_path / "local", stage), stage
