"""Every runner stage killed with SIGKILL part-way resumes to exactly the outputs of an uninterrupted run.

The reference run goes through every stage once. For each stage, a copy of the reference run's earlier
stages is given to ``gdt <stage>`` in a subprocess that is slowed down per part (fault injection: a sleep
after each part, so the kill lands part-way), killed once a few parts are finished, and run again. The
rerun must reproduce the reference's output files byte for byte (sha256 in the manifest) without redoing
the parts that had finished.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.ledger import read_manifest
from manifests.schemas import LABELS
from pipeline.extract.stage import doc_id_of

REPO = Path(__file__).resolve().parents[2]
ORDER = ["extract", "embed", "classify", "dedup", "caption", "shard"]
COMMANDS = {
    "extract": ["extract", "--input", "{corpus}/documents.parquet"],
    "embed": ["embed"],
    "classify": ["classify", "filter"],
    "dedup": ["dedup"],
    "caption": ["caption", "--backend", "context"],
    "shard": ["shard"],
}
SETTINGS = ["runtime.executor=local", "extract.docs_per_part=16", "caption.groups_per_part=8",
            "shard.groups_per_shard=8", "classify.threads=1"]  # fmt: skip
SLOW_PARTS = """
import sys, time
import pipeline.runner as runner
execute_part = runner.execute_part
def slow_part(*args, **kwargs):
    stats = execute_part(*args, **kwargs)
    time.sleep(0.4)
    return stats
runner.execute_part = slow_part
from pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def gdt_args(stage: str, corpus: Path, run: Path) -> list[str]:
    args = [a.format(corpus=corpus) for a in COMMANDS[stage]] + ["--run", str(run), "--quiet"]
    return args + [x for s in SETTINGS for x in ("--set", s)]


def gdt(args: list[str], slow: bool = False) -> subprocess.Popen:
    code = SLOW_PARTS if slow else "import sys; from pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, start_new_session=True)


def write_labels(corpus: Path, run: Path) -> None:
    truth = json.loads((corpus / "truth.json").read_text())
    rows = [
        {"group_id": f"{doc_id_of(g['doc_url'])}-{g['positions'][0]}-{len(g['positions'])}",
         "label": g["label"], "n_annotators": 1, "agreement": 1.0}
        for g in truth["groups"]
    ]  # fmt: skip
    (run / "labels").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=LABELS), run / "labels" / "labels.parquet")


@pytest.fixture(scope="module")
def reference(sample_corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    for stage in ORDER:
        if stage == "classify":
            write_labels(sample_corpus, run)
            train = ["classify", "train", "--run", str(run), "--quiet", "--set", "classify.threads=1"]
            assert gdt(train).wait(timeout=600) == 0
        assert gdt(gdt_args(stage, sample_corpus, run)).wait(timeout=600) == 0, stage
    return run


def outputs(run: Path, stage: str) -> dict[str, str]:
    manifest = read_manifest(run / stage)
    assert manifest is not None, f"{stage} did not finish"
    return {o.path: o.sha256 for o in manifest.outputs if not o.path.startswith("model/")}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("stage", ORDER)
def test_a_stage_killed_part_way_resumes_to_the_same_outputs(stage, reference, sample_corpus, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for earlier in ORDER[: ORDER.index(stage)]:
        shutil.copytree(reference / earlier, run / earlier)
    if stage in ("classify", "dedup", "caption", "shard"):
        shutil.copytree(reference / "labels", run / "labels")
        if stage == "classify":
            shutil.copytree(reference / "classify" / "model", run / "classify" / "model")
    shutil.copy(reference / "config.yaml", run / "config.yaml")

    args = gdt_args(stage, sample_corpus, run)
    process = gdt(args, slow=True)
    markers = run / stage / "_parts"
    deadline = time.monotonic() + 300
    while len(list(markers.glob("*.json"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run / stage / "_manifest.json").exists(), "the kill should land before the stage finishes"
    finished = {m.name: m.stat().st_mtime_ns for m in markers.glob("*.json")}
    assert finished, "no part had finished before the kill"

    assert gdt(args).wait(timeout=600) == 0
    assert outputs(run, stage) == outputs(reference, stage)
    for name, mtime in finished.items():
        assert (markers / name).stat().st_mtime_ns == mtime, f"{stage}: {name} was redone"
    assert not list((run / stage).rglob(".*.tmp-*"))
