"""LoRA (peft): a run trains adapters only, stores them, resumes exactly, and `gdt sample` loads them."""

import argparse
import itertools

import pytest
import torch
from safetensors.torch import load_file

from tests.training.data_fixtures import random_batch, tiny_config
from training import lora
from training.checkpoint import latest_checkpoint
from training.command import register
from training.models import build_transformer
from training.train import build, main

LORA = ["model.lora_rank=4", "optim.lr=1e-2", "objective.reference_prob=0.5", "checkpoint_every=2"]


def batches():
    return itertools.cycle([random_batch(groups=2, n=n, resolution=16, seed=s) for s, n in enumerate([3, 2])])


def test_adapters_only_are_trained_and_stored(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=2", *LORA)
    transformer, _, _ = build(cfg, torch.device("cpu"))
    trainable = [name for name, p in transformer.named_parameters() if p.requires_grad]
    assert trainable and all(lora.is_adapter(name) for name in trainable)
    assert any("attn1.to_q.lora_A" in name for name in trainable)

    main(cfg, data=batches())
    checkpoint = latest_checkpoint(tmp_path)
    stored = load_file(checkpoint / "model.safetensors")
    assert set(stored) == set(trainable) == set(load_file(checkpoint / "ema.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in stored.items() if "lora_B" in k), "B starts at 0 and must train"
    # the random preset's frozen base travels in frozen.safetensors, untouched by training
    frozen = load_file(checkpoint / "frozen.safetensors")
    base = {k[len("transformer.") :]: v for k, v in frozen.items() if k.startswith("transformer.")}
    assert base
    torch.manual_seed(cfg.seed)
    fresh = build_transformer("pixart", "pixart-tiny", None).state_dict()
    for name, value in base.items():
        torch.testing.assert_close(value, fresh[name.replace(".base_layer", "")], rtol=0, atol=0)


def test_lora_run_resumes_exactly_and_samples(tmp_path, capsys):
    full = main(tiny_config(tmp_path / "full", "max_steps=4", *LORA), data=batches())
    part = tmp_path / "part"
    main(tiny_config(part, "max_steps=2", *LORA), data=batches())
    rest = main(tiny_config(part, "max_steps=4", *LORA), data=batches())
    assert [r["loss"] for r in rest] == [r["loss"] for r in full[2:]]

    captions = tmp_path / "captions.txt"
    captions.write_text("a cat\na dog\n")
    parser = argparse.ArgumentParser(prog="gdt")
    register(parser.add_subparsers(dest="command", required=True))
    for weights in ("ema", "model"):
        out = tmp_path / f"samples-{weights}"
        argv = ["sample", "--checkpoint", str(latest_checkpoint(part)), "--captions", str(captions)]
        args = parser.parse_args([*argv, "--out", str(out), "--steps", "2", "--weights", weights])
        assert args.func(args) == 0
        assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "grid.png"]


def test_checkpoint_adapters_must_match_the_model():
    model = build_transformer("pixart", "pixart-tiny", None)
    lora.add_lora(model, 2, None, lora.DEFAULT_TARGETS)
    adapters = {k: v for k, v in model.state_dict().items() if lora.is_adapter(k)}
    lora.load_weights(model, adapters, lora=True)
    adapters.pop(next(iter(adapters)))
    with pytest.raises(ValueError, match="1 missing"):
        lora.load_weights(model, adapters, lora=True)
