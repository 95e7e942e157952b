"""The trainer end to end on tiny random models: it learns, and a resumed run continues exactly."""

import itertools
import json
import shutil

import pytest
import torch

from tests.training.data_fixtures import random_batch, tiny_config
from training.checkpoint import latest_checkpoint
from training.train import main


def test_tiny_model_overfits_two_groups(tmp_path):
    """Two fixed groups of 3 images, 100 steps: the loss falls to under a third of where it started.

    Measured: mean loss of steps 1-10 = 1.23, of steps 81-100 = 0.29 (4.3x lower).
    """
    batch = random_batch(groups=2, n=3, resolution=16, seed=0)
    cfg = tiny_config(
        tmp_path,
        "max_steps=100",
        "checkpoint_every=1000",
        "objective.caption_dropout=0",
        "objective.reference_prob=0",
        "optim.lr=3e-3",
    )
    records = main(cfg, data=itertools.repeat(batch))
    losses = [r["loss"] for r in records]
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    print(f"overfit: mean loss of steps 1-10 {first:.3f} -> steps 81-100 {last:.3f}")
    assert last < first / 3


def test_stop_and_resume_gives_the_uninterrupted_losses(tmp_path):
    batches = [random_batch(groups=2, n=n, resolution=16, seed=s) for s, n in enumerate([3, 2, 3, 4, 2, 3])]
    overrides = ["checkpoint_every=3", "objective.reference_prob=0.7", "objective.caption_dropout=0.3"]
    full = main(tiny_config(tmp_path / "full", "max_steps=6", *overrides), data=itertools.cycle(batches))

    part = tmp_path / "part"
    first = main(tiny_config(part, "max_steps=3", *overrides), data=itertools.cycle(batches))
    assert latest_checkpoint(part).name == "step-00000003"
    rest = main(tiny_config(part, "max_steps=6", *overrides), data=itertools.cycle(batches))

    assert [r["step"] for r in rest] == [4, 5, 6]
    assert [r["loss"] for r in first + rest] == [r["loss"] for r in full]
    logged = [json.loads(line)["loss"] for line in (part / "log.jsonl").read_text().splitlines()]
    assert logged == [r["loss"] for r in full]


def test_outputs_of_a_run(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=2", "checkpoint_every=2", "sample.every=2", "sample.steps=2")
    main(cfg, data=itertools.repeat(random_batch(groups=2, n=2, resolution=16, seed=0)))
    ckpt = latest_checkpoint(tmp_path)
    names = {p.name for p in ckpt.iterdir()}
    assert {
        "model.safetensors",
        "ema.safetensors",
        "frozen.safetensors",
        "optimizer.pt",
        "state-rank0.pt",
        "config.yaml",
    } <= names
    assert (tmp_path / "samples" / "step-00000002.png").exists()
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert (
        record["step"] == 2 and record["samples_per_s"] > 0 and torch.isfinite(torch.tensor(record["loss"]))
    )


def test_gradient_checkpointing_gives_the_same_gradients(arch):
    from tests.training.tiny import ARCHS, tiny_transformer
    from training.group_attention import enable_group_attention

    grads = []
    for checkpointing in (False, True):
        model = tiny_transformer(arch).train()
        enable_group_attention(model, group_size=2)
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(**ARCHS[arch](rows=4)).sample.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_accumulation_and_bf16_resume_exactly(tmp_path):
    batches = [random_batch(groups=1, n=n, resolution=16, seed=s) for s, n in enumerate([2, 3, 2, 3])]
    overrides = ["grad_accum=2", "mixed_precision=bf16", "checkpoint_every=1"]
    full = main(tiny_config(tmp_path / "full", "max_steps=2", *overrides), data=itertools.cycle(batches))
    main(tiny_config(tmp_path / "part", "max_steps=1", *overrides), data=itertools.cycle(batches))
    rest = main(tiny_config(tmp_path / "part", "max_steps=2", *overrides), data=itertools.cycle(batches))
    assert rest[0]["step"] == 2 and rest[0]["loss"] == full[1]["loss"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["objective.kind=pixart"],
        [
            "model.arch=sd3",
            "model.transformer_preset=sd3-tiny",
            "model.text_kind=clip",
            "model.attention_impl=split",
        ],
        ["model.arch=flux", "model.transformer_preset=flux-tiny", "model.text_kind=clip"],
    ],
    ids=["pixart-ddpm", "sd3-flow", "flux-flow"],
)
def test_both_architectures_and_objectives_train(tmp_path, overrides):
    cfg = tiny_config(
        tmp_path, "max_steps=3", "checkpoint_every=3", "sample.every=3", "sample.steps=2", *overrides
    )
    records = main(cfg, data=itertools.repeat(random_batch(groups=2, n=2, resolution=16, seed=0)))
    assert len(records) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    assert (tmp_path / "samples" / "step-00000003.png").exists()


def test_log_does_not_repeat_steps_after_a_crash(tmp_path):
    """A run killed after logging step 3 but before checkpointing it resumes at 2 and logs 3 only once."""
    batches = [random_batch(groups=1, n=n, resolution=16, seed=s) for s, n in enumerate([2, 3])]
    main(tiny_config(tmp_path, "max_steps=3", "checkpoint_every=2"), data=itertools.cycle(batches))
    shutil.rmtree(latest_checkpoint(tmp_path))  # the crash: step 3 was logged, its checkpoint never written
    with (tmp_path / "log.jsonl").open("a") as log:
        log.write('{"step": 4, "lo')  # and a line torn by the kill
    main(tiny_config(tmp_path, "max_steps=4", "checkpoint_every=2"), data=itertools.cycle(batches))
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
