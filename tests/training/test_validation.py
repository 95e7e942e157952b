"""Validation loss: fixed batches, timesteps and noise, so it moves with the weights only."""

import itertools

import pytest
import torch

from tests.training.data_fixtures import random_batch, tiny_config, write_shard
from training.objective import Denoiser, build_objective
from training.train import build, main
from training.validation import VAL_TIMESTEPS, corrupt_at, validation_loss


@pytest.mark.parametrize("kind", ["flow", "pixart"])
def test_fixed_timestep_corruption_matches_the_objective(kind):
    objective = build_objective(kind)
    x0, noise = torch.randn(4, 4, 2, 2), torch.randn(4, 4, 2, 2)
    out = corrupt_at(objective, x0, noise, 0.5)
    if kind == "flow":
        torch.testing.assert_close(out.x_t, 0.5 * x0 + 0.5 * noise)
        assert (out.timestep == 500).all()
    else:
        alpha = objective.alphas_cumprod[500]
        torch.testing.assert_close(out.x_t, alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise)
        assert (out.timestep == 500).all() and torch.equal(out.target, noise)


def test_validation_loss_repeats_and_has_one_value_per_timestep(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=1")
    transformer, encoders, context = build(cfg, torch.device("cpu"))
    batches = [random_batch(2, 3, 16, 0), random_batch(1, 2, 16, 1)]
    denoiser = Denoiser(transformer.eval(), "pixart", encoders.pixels_per_latent)
    first = validation_loss(denoiser, build_objective("flow"), encoders, context, batches, seed=0)
    again = validation_loss(denoiser, build_objective("flow"), encoders, context, batches, seed=0)
    assert first == again
    assert set(first) == {"val_loss"} | {f"val_loss_t{t}" for t in VAL_TIMESTEPS}
    assert context.group_size == 1, "validation restores the group size it found"


def test_validation_loss_falls_as_the_model_fits_the_groups(tmp_path):
    batch = random_batch(groups=2, n=3, resolution=16, seed=0)
    cfg = tiny_config(
        tmp_path, "max_steps=60", "data.val_every=20", "optim.lr=3e-3",
        "objective.caption_dropout=0", "objective.reference_prob=0",
    )  # fmt: skip
    records = main(cfg, data=itertools.repeat(batch), val_data=[batch])
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert [r["step"] for r in records if "val_loss" in r] == [20, 40, 60]
    assert val[-1] < val[0]


def test_validation_reads_the_val_shards(tmp_path):
    shards = tmp_path / "shard"
    shards.mkdir()
    write_shard(shards / "train-000000.tar", [2, 3, 2, 3])
    write_shard(shards / "val-000000.tar", [3, 2])
    cfg = tiny_config(tmp_path / "run", "max_steps=2", "data.val_every=2", "data.val_batches=2")
    records = main(cfg, shards=str(shards))
    assert "val_loss" in records[1] and "val_loss" not in records[0]
    assert torch.isfinite(torch.tensor(records[1]["val_loss"]))
