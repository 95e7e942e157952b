"""EMA, checkpoint files, the encoder cache and group sampling with references."""

import torch

from tests.training.data_fixtures import random_batch, tiny_config
from training import checkpoint as ckpt
from training.ema import EMA
from training.objective import Denoiser
from training.sampling import sample_groups, save_group_images
from training.train import build


def test_ema_tracks_and_swaps_weights():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], start + 1.0)
    with ema.applied(model):
        torch.testing.assert_close(model.weight, start + 1.0)
    torch.testing.assert_close(model.weight.detach(), start + 2.0)


def test_checkpoint_commit_keeps_the_newest(tmp_path):
    for step in (1, 2, 3):
        final = ckpt.checkpoint_dir(tmp_path, step)
        tmp = final.with_name(".tmp-" + final.name)
        tmp.mkdir(parents=True)
        ckpt.write_weights(tmp, {"model": {"w": torch.full((2,), float(step))}})
        ckpt.commit(tmp, final, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000002", "step-00000003"]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000003"
    assert ckpt.load_weights(ckpt.latest_checkpoint(tmp_path), "model")["w"].tolist() == [3.0, 3.0]


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    g = torch.Generator().manual_seed(5)
    torch.save(ckpt.rng_state(g), tmp_path / "s.pt")
    expected = torch.rand(3, generator=g)
    g2 = torch.Generator()
    ckpt.restore_rng(ckpt.load_tensors(tmp_path / "s.pt"), g2)
    assert torch.equal(torch.rand(3, generator=g2), expected)


def test_cached_encoders_give_the_same_conditioning(tmp_path):
    plain = tiny_config(tmp_path / "a", "max_steps=1")
    cached = tiny_config(tmp_path / "b", "max_steps=1", f"data.cache_dir={tmp_path / 'cache'}")
    batch = random_batch(2, 3, 16, 0)
    images, keys = batch["images"].flatten(0, 1), [f"k{i}" for i in range(6)]
    captions = [c for group in batch["captions"] for c in group]
    _, enc_a, _ = build(plain, torch.device("cpu"))
    _, enc_b, _ = build(cached, torch.device("cpu"))
    for _ in range(2):  # the first pass fills the cache, the second reads it
        z_a = enc_a.latents(images, keys, torch.Generator().manual_seed(1))
        z_b = enc_b.latents(images, keys, torch.Generator().manual_seed(1))
        torch.testing.assert_close(z_a, z_b)
        torch.testing.assert_close(enc_a.text(captions).hidden, enc_b.text(captions).hidden)
    assert len(list((tmp_path / "cache" / "latents").rglob("*.safetensors"))) == 6
    assert len(list((tmp_path / "cache" / "text").rglob("*.safetensors"))) == 6


def test_sampling_keeps_references_and_writes_pngs(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=1")
    transformer, encoders, context = build(cfg, torch.device("cpu"))
    batch = random_batch(1, 3, 16, 0)
    ref_latents = encoders.latents(batch["images"][0], None, torch.Generator().manual_seed(0))
    references = torch.tensor([[True, False, False]])
    images = sample_groups(
        Denoiser(transformer.eval(), "pixart", encoders.pixels_per_latent),
        context,
        encoders,
        batch["captions"],
        (4, 8, 8),
        "flow",
        steps=3,
        guidance_scale=2.0,
        generator=torch.Generator().manual_seed(0),
        flow_shift=1.0,
        references=references,
        reference_latents=ref_latents,
    )
    assert images.shape == (1, 3, 3, 16, 16) and images.abs().max() <= 1
    torch.testing.assert_close(images[0, 0], encoders.decode(ref_latents[:1])[0])
    assert context.group_size == 1, "sampling restores the group size it found"
    paths = save_group_images(images, tmp_path / "out")
    assert [p.name for p in paths] == ["grid.png", "0.png", "1.png", "2.png"]


def test_grad_scaler_state_round_trips(tmp_path):
    """fp16 runs resume with the loss scale they had reached, not the initial 65536."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(model(torch.full((1, 2), float("inf"))).sum()).backward()
    scaler.step(optimizer)
    scaler.update()  # an overflow halves the scale
    assert scaler.get_scale() == 512.0
    torch.save(ckpt.training_state(optimizer, schedule, scaler), tmp_path / "optimizer.pt")
    fresh = torch.amp.GradScaler("cpu", init_scale=1024.0)
    ckpt.load_training_state(ckpt.load_tensors(tmp_path / "optimizer.pt"), optimizer, schedule, fresh)
    assert fresh.get_scale() == 512.0


def test_trim_log_keeps_whole_records_up_to_the_step(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')
    ckpt.trim_log(log, 2)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'
