"""Runs on object storage: a whole run with ``--run s3://...`` on moto's real S3 server (loopback) equals
the same run on a local disk byte for byte, and a stage killed with SIGKILL on S3 resumes to the same
outputs without redoing finished parts."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from manifests.ledger import read_manifest
from manifests.storage import as_path, list_files, read_parquet
from pipeline.cli import main
from pipeline.shard.verify import verify_shards
from tests.pipeline.test_stage_faults import SLOW_PARTS

REPO = Path(__file__).resolve().parents[2]
ORDER = ["extract", "embed", "dedup", "caption", "shard"]
SETTINGS = ["runtime.executor=local", "extract.docs_per_part=32", "caption.groups_per_part=16",
            "shard.groups_per_shard=16"]  # fmt: skip


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> list[str]:
    """SETTINGS and a tiny random open_clip encoder (embedding is not the point here)."""
    from classifier.encoders.tiny import write_tiny_clip

    encoder = write_tiny_clip(tmp_path_factory.mktemp("encoder"))
    fields = {"kind": "open_clip", "model": encoder.model, "pretrained": encoder.pretrained}
    fields["model_config_file"] = str(encoder.model_config_file)
    return SETTINGS + [f"embed.encoder.{k}={v}" for k, v in fields.items()]


def stage_args(stage: str, corpus: Path, run: str, settings: list[str]) -> list[str]:
    head = {
        "extract": ["extract", "--input", str(corpus / "documents.parquet")],
        "caption": ["caption", "--backend", "context"],
    }.get(stage, [stage])
    return [*head, "--run", run, "--quiet", *(x for s in settings for x in ("--set", s))]


def whole_run(corpus: Path, run: str, settings: list[str]) -> None:
    for stage in ORDER:
        assert main(stage_args(stage, corpus, run, settings)) == 0, stage


def assert_same_outputs(local: Path, remote: str, stages: list[str]) -> None:
    """Equal manifests' outputs (paths, rows, sizes, sha256), equal table contents, equal tar bytes."""
    remote_run = as_path(remote)
    for stage in stages:
        mine, theirs = read_manifest(local / stage), read_manifest(remote_run / stage)
        assert mine is not None and theirs is not None, stage
        assert theirs.outputs == mine.outputs, stage
        for out in mine.outputs:
            if out.path.endswith(".parquet"):
                assert read_parquet(remote_run / stage / out.path) == read_parquet(local / stage / out.path)
            elif out.path.endswith(".tar"):
                data = (remote_run / stage / out.path).read_bytes()
                assert data == (local / stage / out.path).read_bytes(), out.path
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    assert tar.getnames(), out.path


def assert_same_report(local: Path, remote: str) -> None:
    """`gdt report` on the store writes RUN/report there: the same files as the local run's report, and the
    same page once the run's address, the time it was generated and the stages' timings are set aside."""
    for run in (str(local), remote):
        assert main(["report", "--run", run]) == 0
    mine, theirs = local / "report", as_path(remote) / "report"
    names = sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*") if p.is_file())
    assert sorted(list_files(theirs)) == names and "index.html" in names
    for name in names:
        if name != "index.html":
            assert (theirs / name).read_bytes() == (mine / name).read_bytes(), name

    def page(text: str, run: str) -> str:
        text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "TIME", text.replace(run, "RUN"))
        text = re.sub(r"&#34;timings&#34;: \{[^}]*\}", "TIMINGS", text)
        return re.sub(r"\d+\.\d s</summary>", "SECONDS</summary>", text)

    remote_page = page((theirs / "index.html").read_text(), remote)
    assert remote_page == page((mine / "index.html").read_text(), str(local))


@pytest.fixture(scope="module")
def local_run(sample_corpus, settings, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("local") / "run"
    whole_run(sample_corpus, str(run), settings)
    return run


@pytest.mark.integration
@pytest.mark.slow
def test_a_whole_run_on_s3_equals_the_local_run_byte_for_byte_report_included(
    sample_corpus, settings, local_run, s3_bucket
):
    remote = f"{s3_bucket}/runs/one"
    whole_run(sample_corpus, remote, settings)
    assert_same_outputs(local_run, remote, ORDER)
    assert_same_report(local_run, remote)
    shard = read_manifest(as_path(remote) / "shard")
    assert shard is not None and any(o.path.endswith(".tar") for o in shard.outputs)
    report = verify_shards(as_path(remote) / "shard")
    assert report.ok and report.complete and report.shards == len(shard.extra["shards"])
    for stage in ORDER:  # described while written: no output was read back to be hashed
        manifest = read_manifest(as_path(remote) / stage)
        assert manifest is not None and manifest.timings["outputs_read_back"] == 0, stage


def markers(run: str, stage: str) -> dict[str, str]:
    """Finished parts' markers of a stage on S3: name -> ETag (changes if the marker is written again)."""
    path = as_path(run) / stage / "_parts"
    if not path.fs.exists(path.path):
        return {}
    return {
        name.rsplit("/", 1)[-1]: info["ETag"] for name, info in path.fs.find(path.path, detail=True).items()
    }


def gdt(args: list[str], slow: bool = False) -> subprocess.Popen:
    code = SLOW_PARTS if slow else "import sys; from pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, start_new_session=True)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("stage", ["extract", "shard"])
def test_a_stage_killed_on_s3_resumes_to_the_same_outputs(
    stage, sample_corpus, settings, local_run, s3_bucket
):
    remote = f"{s3_bucket}/runs/killed"
    target = as_path(remote)
    for earlier in ORDER[: ORDER.index(stage)]:  # the local run's earlier stages, uploaded
        target.fs.put(str(local_run / earlier), f"{target.path}/{earlier}", recursive=True)
    target.fs.put(str(local_run / "config.yaml"), f"{target.path}/config.yaml")
    args = stage_args(stage, sample_corpus, remote, settings)
    process = gdt(args, slow=True)
    deadline = time.monotonic() + 300
    while len(markers(remote, stage)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert read_manifest(as_path(remote) / stage) is None, "the kill should land before the stage finishes"
    finished = markers(remote, stage)
    assert finished, "no part had finished before the kill"

    assert gdt(args).wait(timeout=600) == 0
    assert_same_outputs(local_run, remote, [stage])
    after = markers(remote, stage)
    for name, etag in finished.items():
        assert after[name] == etag, f"{stage}: {name} was redone"


@pytest.mark.integration
@pytest.mark.slow
def test_extract_on_ray_writes_the_same_outputs_to_s3(sample_corpus, settings, local_run, s3_bucket):
    """Parts and the finalize tasks on a Ray cluster started by the command, run folder on S3."""
    remote = f"{s3_bucket}/runs/ray"
    ray_settings = [s for s in settings if s != "runtime.executor=local"]
    ray_settings += ["runtime.executor=ray", "runtime.num_cpus=2", "runtime.progress=false"]
    assert gdt(stage_args("extract", sample_corpus, remote, ray_settings)).wait(timeout=600) == 0
    assert_same_outputs(local_run, remote, ["extract"])
