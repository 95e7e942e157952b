"""`gdt train` under torchrun: 2 CPU processes (gloo) that draw different group sizes at the same step.

This used to abort at step 2 ("Received data size doesn't match expected size"): the FLOP count ran an
extra forward through the DDP model on the rank that met a new shape, so the ranks' collectives fell out
of step. Here the run trains, checkpoints every rank's state, and a stopped-and-resumed run logs exactly
the losses of an uninterrupted one.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.training.data_fixtures import write_shard
from training.data import group_loader
from training.generate import generate, read_captions

GROUP_SIZES = [2, 3, 4, 2, 3, 4, 2, 3, 2, 4, 3, 2]
SETTINGS = ["data.resolution=16", "checkpoint_every=2", "data.batches_per_epoch=50", "data.val_every=2"]


def torchrun(out: Path, shards: Path, max_steps: int, *extra: str) -> None:
    """Two local processes of `gdt train` on the tiny config; fails with both ranks' output."""
    overrides = [f"out_dir={out}", f"max_steps={max_steps}", *SETTINGS, *(extra or ["sample.every=0"])]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [
        "-m",
        "pipeline.cli",
        "train",
        "--config",
        "training/configs/tiny.yaml",
        "--shards",
        str(shards),
    ]
    command += [arg for item in overrides for arg in ("--set", item)]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1", PYTHONPATH=os.getcwd())
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def losses(out: Path) -> list[tuple[int, float, float | None]]:
    """(step, training loss, validation loss or None) of each logged step."""
    records = map(json.loads, (out / "log.jsonl").read_text().splitlines())
    return [(r["step"], r["loss"], r.get("val_loss")) for r in records]


@pytest.fixture
def shards(tmp_path) -> Path:
    folder = tmp_path / "shard"
    folder.mkdir()
    write_shard(folder / "train-000000.tar", GROUP_SIZES)
    write_shard(folder / "val-000000.tar", [3, 2, 4])
    return folder


def rank_group_sizes(shards: Path, rank: int, batches: int) -> list[int]:
    """The group size of each batch rank `rank` trains on (the trainer's loader, seed 0, tiny config)."""
    loader = group_loader(
        shards, batch_size=2, resolution=16, train=True, batches_per_epoch=50, num_workers=0,
        rank=rank, world_size=2, seed=0, max_group_size=4,
    )  # fmt: skip
    sizes = []
    for batch in loader:
        sizes.append(batch["images"].shape[1])
        if len(sizes) == batches:
            return sizes
    return sizes


@pytest.mark.integration
def test_two_ranks_with_mixed_group_sizes_train_and_resume_exactly(tmp_path, shards):
    per_rank = [rank_group_sizes(shards, rank, 4) for rank in range(2)]
    assert any(a != b for a, b in zip(*per_rank, strict=True)), "the ranks must meet different shapes"

    torchrun(tmp_path / "full", shards, 4)
    part = tmp_path / "part"
    torchrun(part, shards, 2)
    checkpoint = part / "checkpoints" / "step-00000002"
    assert {"state-rank0.pt", "state-rank1.pt", "model.safetensors", "optimizer.pt"} <= {
        p.name for p in checkpoint.iterdir()
    }
    torchrun(part, shards, 4)

    full = losses(tmp_path / "full")
    assert [step for step, _, _ in full] == [1, 2, 3, 4]
    assert [val is not None for _, _, val in full] == [False, True, False, True]
    assert losses(part) == full


@pytest.mark.integration
def test_fsdp_two_ranks_shard_resume_exactly_and_sample(tmp_path, shards):
    """FSDP2 over 2 gloo processes: sharded checkpoints (model, optimiser, EMA) resume to the same losses,
    with EMA validation grids on every rank, and the gathered weights sample in one process."""
    fsdp = ["parallel=fsdp", "sample.every=2", "sample.steps=2", "ema_decay=0.5"]
    torchrun(tmp_path / "full", shards, 4, *fsdp)
    part = tmp_path / "part"
    torchrun(part, shards, 2, *fsdp)
    sharded = part / "checkpoints" / "step-00000002" / "sharded"
    assert (sharded / ".metadata").exists() and len(list(sharded.glob("*.distcp"))) == 2
    torchrun(part, shards, 4, *fsdp)
    assert losses(part) == losses(tmp_path / "full")
    assert (part / "samples" / "step-00000004.png").exists()

    last = part / "checkpoints" / "step-00000004"
    for name in ("model", "ema"):
        assert (
            load_file(last / f"{name}.safetensors").keys()
            == load_file(tmp_path / "full" / "checkpoints" / "step-00000004" / f"{name}.safetensors").keys()
        )
    captions = tmp_path / "captions.txt"
    captions.write_text("a\nb\n")
    paths = generate(last, read_captions(captions), tmp_path / "samples", steps=2)
    assert [p.name for p in paths] == ["grid.png", "0.png", "1.png"]
