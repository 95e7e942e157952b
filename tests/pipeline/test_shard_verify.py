"""`gdt shard verify` catches damaged tars; a writer killed with SIGKILL leaves only good tars and resumes."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.shard import command
from pipeline.shard.config import ShardConfig
from pipeline.shard.verify import verify_shards
from tests.pipeline.shard_inputs import build_run, run_shard

REPO = Path(__file__).resolve().parents[2]
CONFIG = ShardConfig(target_mb=None, groups_per_shard=2, val_fraction=0.3)


def verify_cli(run: Path) -> int:
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["shard", "verify", "--run", str(run)])
    return args.func(args)


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    build_run(run)
    run_shard(run, CONFIG)
    return run


def test_a_fresh_set_verifies(sharded, capsys):
    report = verify_shards(sharded / "shard")
    assert report.ok and report.shards == len(list((sharded / "shard").glob("*.tar")))
    assert report.groups == pq.read_metadata(sharded / "shard" / "index.parquet").num_rows
    assert verify_cli(sharded) == 0
    assert ": ok" in capsys.readouterr().out


def test_a_truncated_tar_is_caught(sharded):
    tar = sorted((sharded / "shard").glob("train-*.tar"))[0]
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2])
    report = verify_shards(sharded / "shard")
    assert not report.ok
    assert {p.shard for p in report.problems} == {tar.name}
    assert verify_cli(sharded) == 1


def test_an_altered_byte_in_an_image_is_caught_with_its_group(sharded):
    row = pq.read_table(sharded / "shard" / "index.parquet").to_pylist()[0]
    tar = sharded / "shard" / row["shard"]
    data = bytearray(tar.read_bytes())
    position = row["offset"] + row["bytes"] - 600  # inside the group's last image
    data[position] ^= 0xFF
    tar.write_bytes(bytes(data))
    report = verify_shards(sharded / "shard")
    assert [str(p) for p in report.problems if p.shard == tar.name]
    assert any("sha256" in p.message for p in report.problems)
    assert verify_cli(sharded) == 1


def test_a_group_missing_from_a_tar_is_reported_by_id(sharded):
    index = pq.read_table(sharded / "shard" / "index.parquet").to_pylist()
    row = index[0]
    tar = sharded / "shard" / row["shard"]
    data = tar.read_bytes()
    tar.write_bytes(data[: row["offset"]] + data[row["offset"] + row["bytes"] :])
    problems = verify_shards(sharded / "shard").problems
    assert any(p.group_id == row["group_id"] and "missing" in p.message for p in problems)


SLOW_WRITER = """
import sys, time
from pathlib import Path
import pipeline.shard.writer as writer
from pipeline.shard.config import ShardConfig
from tests.pipeline.shard_inputs import run_shard

add = writer.GroupShardWriter.add
def slow_add(self, members):  # fault injection: widen the window in which a tar is half-written
    time.sleep(0.15)
    return add(self, members)
writer.GroupShardWriter.add = slow_add
run_shard(Path(sys.argv[1]), ShardConfig.model_validate_json(sys.argv[2]))
"""


@pytest.mark.slow
def test_sigkill_leaves_no_bad_tar_and_the_rerun_completes_the_same_set(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    build_run(killed)
    shutil.copytree(killed, clean)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(killed), CONFIG.model_dump_json()], env=env
    )
    out = killed / "shard"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            finished = list(out.glob("*.tar")) if out.exists() else []
            partial = list(out.glob(".*.tar.tmp-*")) if out.exists() else []
            if len(finished) >= 2 and partial:
                break
            assert proc.poll() is None, "the writer finished before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("the writer never had a tar half-written")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert list(out.glob(".*.tar.tmp-*")), "killed mid-tar: the half-written tar is under its temporary name"
    report = verify_shards(out)
    assert not report.complete and report.shards >= 2
    assert report.problems == []
    assert verify_cli(killed) == 1, "an unfinished set is not ok"
    finished_parts = len(list((out / "_parts").glob("part-*.json")))

    resumed = run_shard(killed, CONFIG)
    assert resumed.manifest.parts["resumed"] == finished_parts >= 1
    assert resumed.parts_run and min(resumed.parts_run) >= finished_parts
    run_shard(clean, CONFIG)
    names = sorted(p.name for p in out.glob("*.tar"))
    assert names == sorted(p.name for p in (clean / "shard").glob("*.tar"))
    for name in names:
        assert (out / name).read_bytes() == (clean / "shard" / name).read_bytes()
    assert pq.read_table(out / "index.parquet").equals(pq.read_table(clean / "shard" / "index.parquet"))
    assert not list(out.rglob(".*")), "temporaries of the killed writer are cleaned up"
    assert verify_shards(out).ok
