"""Group attention on stock diffusers transformers: the "Done when" properties of issue 9."""

import copy

import pytest
import torch

from tests.training.tiny import ARCHS, SHARED, TOKENS, tiny_transformer
from training.group_attention import (
    enable_group_attention,
    group_context,
    joint_group_attention_mask,
    joint_group_attention_split,
    joint_group_mask,
)


def run(model, inputs):
    with torch.no_grad():
        return model(**inputs).sample


@pytest.mark.parametrize("impl", ["mask", "split"])
def test_group_of_one_equals_stock_model(arch, impl):
    stock = tiny_transformer(arch)
    model = copy.deepcopy(stock)
    enable_group_attention(model, group_size=1, impl=impl)
    inputs = ARCHS[arch](rows=4)
    torch.testing.assert_close(run(model, inputs), run(stock, inputs), rtol=1e-5, atol=1e-5)


def test_image_changes_only_its_own_group(arch):
    model = tiny_transformer(arch)
    enable_group_attention(model, group_size=3)
    inputs = ARCHS[arch](rows=6)  # two groups of three
    base = run(model, inputs)
    changed = copy.deepcopy(inputs)
    changed["hidden_states"][1] += 1.0  # image 1 of group 0
    out = run(model, changed)
    delta = (out - base).flatten(1).abs().amax(dim=1)
    assert (delta[[0, 2]] > 1e-4).all(), "the image must influence the other images of its group"
    assert (delta[3:] == 0).all(), "the image must not influence another group"


def test_permuting_a_group_permutes_outputs(arch):
    model = tiny_transformer(arch)
    enable_group_attention(model, group_size=4)
    inputs = ARCHS[arch](rows=8)
    perm = torch.tensor([2, 0, 3, 1, 4, 5, 6, 7])  # shuffle group 0, keep group 1
    permuted = {k: (v[perm] if torch.is_tensor(v) and k not in SHARED else v) for k, v in inputs.items()}
    torch.testing.assert_close(run(model, permuted), run(model, inputs)[perm], rtol=1e-5, atol=1e-5)


def test_ragged_batch_is_refused(arch):
    model = tiny_transformer(arch)
    enable_group_attention(model, group_size=4)
    with pytest.raises(ValueError, match="whole number of groups"):
        run(model, ARCHS[arch](rows=6))


def test_context_is_shared_and_found(arch):
    model = tiny_transformer(arch)
    context = enable_group_attention(model, group_size=2)
    assert group_context(model) is context
    context.group_size = 3
    run(model, ARCHS[arch](rows=6))


def qkv(rows: int, length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, 2, length, 16, generator=g) for _ in range(3)]


@pytest.mark.parametrize("sees_others", [False, True])
def test_mask_and_split_implementations_agree(sees_others):
    q, k, v = qkv(rows=6, length=12, seed=0)
    cq, ck, cv = qkv(rows=6, length=5, seed=1)
    image_a, text_a = joint_group_attention_mask(q, k, v, cq, ck, cv, 3, sees_others)
    image_b, text_b = joint_group_attention_split(q, k, v, cq, ck, cv, 3, sees_others)
    torch.testing.assert_close(image_a, image_b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(text_a, text_b, rtol=1e-5, atol=1e-5)


def test_mask_layout():
    mask = joint_group_mask(2, image_len=2, text_len=1, image_sees_other_captions=False, device="cpu")
    # order: img0 img0 img1 img1 txt0 txt1
    expected = torch.tensor(
        [
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0, 1],
            [1, 1, 1, 1, 0, 1],
            [1, 1, 0, 0, 1, 0],
            [0, 0, 1, 1, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("impl", ["mask", "split"])
@pytest.mark.parametrize("sees_others", [False, True])
def test_sd3_caption_never_reaches_other_text_tokens(impl, sees_others):
    """Within one layer, caption j's tokens change text tokens of image i != j only if nothing else does."""
    model = tiny_transformer("sd3")
    enable_group_attention(model, group_size=3, impl=impl, image_sees_other_captions=sees_others)
    attn = model.transformer_blocks[0].attn
    g = torch.Generator().manual_seed(0)
    image = torch.randn(6, 10, 32, generator=g)
    text = torch.randn(6, 4, 32, generator=g, requires_grad=True)
    image_out, text_out = attn(hidden_states=image, encoder_hidden_states=text)
    # Gradient of image 0's text outputs with respect to all captions: only caption 0 may contribute.
    (grad,) = torch.autograd.grad(text_out[0].sum(), text, retain_graph=True)
    assert grad[0].abs().sum() > 0
    assert (grad[1:] == 0).all()
    # Image tokens of image 0 see caption 1 only when the switch is on.
    (grad,) = torch.autograd.grad(image_out[0].sum(), text)
    assert grad[0].abs().sum() > 0
    assert (grad[1].abs().sum() > 0) == sees_others
    assert (grad[3:] == 0).all()


@pytest.mark.parametrize("sees_others", [False, True])
def test_sd3_model_outputs_agree_between_implementations(sees_others):
    outputs = []
    for impl in ("mask", "split"):
        model = tiny_transformer("sd3")
        enable_group_attention(model, group_size=3, impl=impl, image_sees_other_captions=sees_others)
        outputs.append(run(model, ARCHS["sd3"](rows=6)))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def test_switch_changes_what_images_see():
    model = tiny_transformer("sd3")
    context = enable_group_attention(model, group_size=3)
    inputs = ARCHS["sd3"](rows=6)
    own_only = run(model, inputs)
    context.image_sees_other_captions = True
    assert not torch.allclose(run(model, inputs), own_only)


def test_unsupported_model_is_refused():
    with pytest.raises(TypeError, match="PixArtTransformer2DModel"):
        enable_group_attention(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("impl", ["mask", "split"])
def test_flux_single_stream_text_sees_only_its_own_image(impl):
    """In a single-stream row [text; image], text tokens see their own image, image tokens the group's."""
    model = tiny_transformer("flux")
    context = enable_group_attention(model, group_size=2, impl=impl)
    run(model, ARCHS["flux"](rows=2))
    assert context.text_len == TOKENS, "the model's forward records where a row's text ends"
    attn = model.single_transformer_blocks[0].attn
    x = torch.randn(2, TOKENS + 16, attn.inner_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = attn(x)
        other, own = x.clone(), x.clone()
        other[1, TOKENS:] += 1.0  # the other image of the group
        own[0, TOKENS:] += 1.0  # the row's own image
        after_other, after_own = attn(other), attn(own)
    assert torch.equal(after_other[0, :TOKENS], base[0, :TOKENS]), "text must not see the group's others"
    assert (after_other[0, TOKENS:] - base[0, TOKENS:]).abs().amax() > 1e-4, "images see the group"
    assert (after_own[0, :TOKENS] - base[0, :TOKENS]).abs().amax() > 1e-4, "text sees its own image"


def test_group_attention_off_is_the_stock_model_per_image(arch):
    stock = tiny_transformer(arch)
    model = copy.deepcopy(stock)
    context = enable_group_attention(model, group_size=3)
    context.enabled = False
    inputs = ARCHS[arch](rows=6)
    torch.testing.assert_close(run(model, inputs), run(stock, inputs), rtol=1e-5, atol=1e-5)
