"""The image-position embedding: off by default, the stock model at first, order-aware once trained."""

import copy
import itertools

import pytest
import torch

from tests.training.data_fixtures import random_batch, tiny_config
from tests.training.tiny import ARCHS, SHARED, tiny_transformer
from training import checkpoint as ckpt
from training.config import ConfigError
from training.generate import load_checkpoint
from training.group_attention import enable_group_attention
from training.image_position import add_image_position
from training.train import main


def run(model, inputs):
    with torch.no_grad():
        return model(**inputs).sample


def permute(inputs: dict, perm: torch.Tensor) -> dict:
    return {k: (v[perm] if torch.is_tensor(v) and k not in SHARED else v) for k, v in inputs.items()}


def test_a_new_table_leaves_the_model_unchanged(arch):
    stock = tiny_transformer(arch)
    enable_group_attention(stock, group_size=4)
    model = copy.deepcopy(stock)
    add_image_position(model, enable_group_attention(model, group_size=4), max_group_size=4)
    inputs = ARCHS[arch](rows=8)
    torch.testing.assert_close(run(model, inputs), run(stock, inputs))


def test_positions_break_permutation_equivariance(arch):
    """Shuffling a group's images shuffles the outputs alike without positions, but not with them."""
    model = tiny_transformer(arch)
    table = add_image_position(model, enable_group_attention(model, group_size=4), max_group_size=4)
    inputs = ARCHS[arch](rows=8)
    perm = torch.tensor([2, 0, 3, 1, 4, 5, 6, 7])  # shuffle group 0, keep group 1
    torch.testing.assert_close(run(model, permute(inputs, perm)), run(model, inputs)[perm])
    with torch.no_grad():
        table.table.weight.normal_(generator=torch.Generator().manual_seed(0))
    moved, kept = run(model, permute(inputs, perm)), run(model, inputs)[perm]
    assert not torch.allclose(moved[:4], kept[:4], atol=1e-3)
    torch.testing.assert_close(moved[4:], kept[4:])  # group 1 kept its order: same outputs


def test_groups_larger_than_the_table_are_refused():
    model = tiny_transformer("pixart")
    context = enable_group_attention(model, group_size=2)
    add_image_position(model, context, max_group_size=2)
    context.group_size = 4
    with pytest.raises(ValueError, match="image-position table has 2 positions"):
        run(model, ARCHS["pixart"](rows=8))


def test_table_trains_and_comes_back_from_the_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=3", "checkpoint_every=3", "model.image_position=true")
    main(cfg, data=itertools.repeat(random_batch(groups=2, n=3, resolution=16, seed=0)))
    _, transformer, _, _ = load_checkpoint(ckpt.latest_checkpoint(tmp_path), "model", torch.device("cpu"))
    stored = ckpt.load_weights(ckpt.latest_checkpoint(tmp_path), "model")["image_position.table.weight"]
    assert stored[:3].abs().amax() > 0 and (stored[3:] == 0).all()  # only positions 0..2 were seen
    torch.testing.assert_close(transformer.image_position.table.weight, stored)


def test_image_position_with_lora_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="image_position is not supported with LoRA"):
        tiny_config(tmp_path, "max_steps=1", "model.image_position=true", "model.lora_rank=4")
