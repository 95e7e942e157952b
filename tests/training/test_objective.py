"""Objectives, reference conditioning and caption dropout."""

import pytest
import torch

from tests.training.data_fixtures import random_batch, tiny_config
from tests.training.tiny import tiny_transformer
from training.group_attention import enable_group_attention
from training.models import TextEmbeddings
from training.objective import Denoiser, FlowMatching, PixArtDDPM, build_objective, drop_captions
from training.references import sample_references
from training.train import build, group_loss, prepare_batch


@pytest.mark.parametrize("kind", ["flow", "pixart"])
@pytest.mark.parametrize("arch", ["pixart", "sd3"])
def test_references_get_zero_loss_and_zero_gradient_from_their_noise(arch, kind):
    model = tiny_transformer(arch)
    enable_group_attention(model, group_size=3)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 4, 8, 8, generator=g)
    noise = torch.randn(6, 4, 8, 8, generator=g, requires_grad=True)
    text = TextEmbeddings(
        torch.randn(6, 8, 32, generator=g), torch.ones(6, 8), torch.randn(6, 32, generator=g)
    )
    references = torch.tensor([True, False, False, False, True, True])  # m = 1 and m = 2
    loss, per_image = group_loss(
        Denoiser(model, arch, 2), build_objective(kind), x0, noise, text, references, g
    )
    (grad,) = torch.autograd.grad(loss, noise)
    assert (grad[references] == 0).all(), "a reference's own noise must not reach the loss"
    assert (grad[~references].abs().flatten(1).sum(1) > 0).all()
    kept = per_image[~references]
    torch.testing.assert_close(loss, kept.mean())


def test_references_are_clean_inputs_but_still_condition_the_group():
    """Changing a reference image changes the loss of the others: it conditions them through attention."""
    model = tiny_transformer("pixart")
    enable_group_attention(model, group_size=2)
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    text = TextEmbeddings(torch.randn(2, 8, 32), torch.ones(2, 8))
    references = torch.tensor([True, False])
    denoiser, objective = Denoiser(model, "pixart", 2), FlowMatching()
    losses = []
    for shift in (0.0, 1.0):
        changed = x0.clone()
        changed[0] += shift
        loss, _ = group_loss(
            denoiser, objective, changed, noise, text, references, torch.Generator().manual_seed(2)
        )
        losses.append(loss.item())
    assert losses[0] != losses[1]


def test_sample_references_bounds():
    g = torch.Generator().manual_seed(0)
    refs = sample_references(groups=2000, n=4, prob=0.5, max_references=5, generator=g)
    m = refs.sum(dim=1)
    assert m.max() == 3, "m never reaches n: at least one image per group is generated"
    assert 0.45 < (m > 0).float().mean() < 0.55
    assert set(m.tolist()) == {0, 1, 2, 3}
    assert refs[:, 0].float().mean() > 0.2, "references are at random positions, not always last"
    assert not sample_references(5, 1, 1.0, 3, g).any(), "a group of one has no references"


def test_caption_dropout_per_group_blanks_whole_groups():
    """The sampler's unconditional branch is a whole group of empty captions: training shows it at rate p."""
    captions = [[f"c{i}{j}" for j in range(4)] for i in range(500)]
    dropped = drop_captions(captions, 0.25, torch.Generator().manual_seed(0), per="group")
    blank = [group == [""] * 4 for group in dropped]
    assert 0.2 < sum(blank) / len(blank) < 0.3
    assert all(
        group == original for group, original, b in zip(dropped, captions, blank, strict=True) if not b
    )


def test_caption_dropout_per_image():
    captions = [[f"c{i}{j}" for j in range(4)] for i in range(500)]
    dropped = drop_captions(captions, 0.25, torch.Generator().manual_seed(0), per="image")
    flat = [c for group in dropped for c in group]
    assert 0.22 < flat.count("") / len(flat) < 0.28
    assert any(0 < group.count("") < 4 for group in dropped), "dropout is per image, not per group"
    kept = [c for c in flat if c]
    assert all(c in {x for g in captions for x in g} for c in kept)


def test_flow_timesteps_are_logit_normal():
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(20000, 1, 1, 1)
    out = FlowMatching(0.0, 1.0).corrupt(x0, torch.ones_like(x0), g)
    t = out.timestep / 1000
    torch.testing.assert_close(out.x_t.flatten(), t)  # x_t = t * noise when x0 = 0
    logits = torch.logit(t.double())
    assert abs(logits.mean()) < 0.03 and abs(logits.std() - 1) < 0.03
    torch.testing.assert_close(out.target, torch.ones_like(x0))


def test_pixart_objective_targets_noise():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(8, 4, 2, 2), torch.randn(8, 4, 2, 2)
    out = PixArtDDPM().corrupt(x0, noise, g)
    assert torch.equal(out.target, noise)
    assert out.timestep.min() >= 0 and out.timestep.max() <= 999


def test_prepare_batch_shapes(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=1", "objective.reference_prob=1.0")
    _, encoders, context = build(cfg, torch.device("cpu"))
    batch = random_batch(groups=2, n=3, resolution=16, seed=0)
    x0, text, refs = prepare_batch(batch, cfg, encoders, context, torch.Generator().manual_seed(0))
    assert context.group_size == 3
    assert x0.shape == (6, 4, 8, 8) and text.hidden.shape == (6, 16, 32) and refs.shape == (6,)
    assert refs.view(2, 3).sum(1).min() >= 1


def test_prepare_batch_refuses_too_large_groups(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=1", "data.max_group_size=2")
    _, encoders, context = build(cfg, torch.device("cpu"))
    with pytest.raises(ValueError, match="max_group_size"):
        prepare_batch(random_batch(1, 3, 16, 0), cfg, encoders, context, torch.Generator())


@pytest.mark.parametrize("kind", ["flow", "pixart"])
def test_timesteps_per_group_or_per_image(kind):
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(12, 1, 1, 1)
    shared = build_objective(kind).corrupt(x0, torch.ones_like(x0), g, group_size=3).timestep.view(4, 3)
    assert (shared == shared[:, :1]).all(), "the rows of a group share one timestep"
    assert len(set(shared[:, 0].tolist())) == 4, "groups draw their own timesteps"
    apart = build_objective(kind).corrupt(x0, torch.ones_like(x0), g, group_size=1).timestep.view(4, 3)
    assert (apart != apart[:, :1]).any()


def test_group_timestep_leaves_references_at_zero():
    """One timestep per group applies to its generated images; its references stay clean (t = 0)."""
    seen = []

    def denoiser(x_t, timestep, text):
        seen.append(timestep)
        return x_t

    x0 = torch.randn(6, 4, 8, 8)
    references = torch.tensor([True, False, False, False, False, True])
    text = TextEmbeddings(torch.randn(6, 8, 32), torch.ones(6, 8))
    group_loss(denoiser, FlowMatching(), x0, torch.randn_like(x0), text, references, torch.Generator(), 3)
    t = seen[0]
    assert t[0] == 0 and t[5] == 0 and t[1] == t[2] > 0 and t[3] == t[4] > 0 and t[1] != t[3]


def test_flux_denoiser_packs_patches_as_the_flux_pipeline_does():
    """Latents -> 2x2-patch tokens and ids exactly as FluxPipeline makes them; the output unpacked back."""
    from types import SimpleNamespace

    from diffusers import FluxPipeline

    seen = {}

    class Echo(torch.nn.Module):
        config = SimpleNamespace(guidance_embeds=False)

        def forward(self, **kwargs):
            seen.update(kwargs)
            return SimpleNamespace(sample=kwargs["hidden_states"])

    x = torch.randn(3, 4, 8, 6)
    text = TextEmbeddings(torch.randn(3, 5, 32), torch.ones(3, 5), torch.randn(3, 32))
    out = Denoiser(Echo(), "flux", 8)(x, torch.full((3,), 500.0), text)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    torch.testing.assert_close(seen["hidden_states"], FluxPipeline._pack_latents(x, 3, 4, 8, 6))
    torch.testing.assert_close(
        seen["img_ids"], FluxPipeline._prepare_latent_image_ids(3, 4, 3, "cpu", x.dtype)
    )
    assert seen["txt_ids"].shape == (5, 3) and (seen["timestep"] == 0.5).all() and seen["guidance"] is None
