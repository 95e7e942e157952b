"""Model building: presets, loading the same models back from a local diffusers folder, text encoders."""

import itertools

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from tests.training.data_fixtures import random_batch, tiny_config
from tests.training.tiny import ARCHS
from training.checkpoint import latest_checkpoint
from training.config import ConfigError, load_train_config
from training.generate import load_checkpoint
from training.models import (
    build_text_encoder,
    build_transformer,
    build_vae,
    byte_tokenizer,
    save_tiny_pipeline,
)
from training.objective import Denoiser
from training.sampling import sample_groups
from training.train import main


@pytest.mark.parametrize(("arch", "kind"), [("pixart", "t5"), ("sd3", "clip")])
def test_models_load_back_from_a_local_folder(tmp_path, arch, kind):
    torch.manual_seed(0)
    save_tiny_pipeline(tmp_path, arch, kind, max_length=8)
    torch.manual_seed(0)  # the same seed rebuilds the same random weights, in the same order
    presets = (build_transformer(arch, f"{arch}-tiny", None), build_vae("tiny", None))
    text = build_text_encoder(kind, "tiny", None, 8)
    loaded = (build_transformer(arch, None, str(tmp_path)), build_vae(None, str(tmp_path)))
    loaded_text = build_text_encoder(kind, None, str(tmp_path), 8)
    for a, b in zip(presets, loaded, strict=True):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    inputs = ARCHS[arch](rows=2)
    with torch.no_grad():
        torch.testing.assert_close(presets[0](**inputs).sample, loaded[0](**inputs).sample)
    a, b = text.encode(["a cat", "ünïcode ok"]), loaded_text.encode(["a cat", "ünïcode ok"])
    torch.testing.assert_close(a.hidden, b.hidden)
    assert a.hidden.shape == (2, 8, 32) and a.mask[0].sum() == len("a cat") + 1  # bytes + </s>
    assert (a.pooled is not None) == (kind == "clip")


def test_byte_tokenizer_handles_any_text_offline():
    tok = byte_tokenizer(max_length=12)
    ids = tok(["héllo", ""], padding="max_length", max_length=12, truncation=True).input_ids
    assert ids[0][:7] == [tok.convert_tokens_to_ids(t) for t in tok.tokenize("héllo")] + [1]
    assert ids[1][0] == 1 and set(ids[1][1:]) == {0}
    assert tok.decode(ids[0], skip_special_tokens=True) == "héllo"


def test_sd3_text_encoder_matches_the_sd3_pipeline(tmp_path):
    """kind "sd3" loads CLIP-L, CLIP-G and T5 from an SD3 folder and combines them as the pipeline does."""
    torch.manual_seed(0)

    def clip(width):
        return CLIPTextModelWithProjection(
            CLIPTextConfig(
                vocab_size=259,
                hidden_size=width,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=77,
                projection_dim=16,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=1,
            )
        )

    t5 = T5EncoderModel(T5Config(vocab_size=259, d_model=32, d_ff=32, d_kv=8, num_layers=1, num_heads=2))
    StableDiffusion3Pipeline(
        transformer=None,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=None,
        text_encoder=clip(16),
        tokenizer=byte_tokenizer(77),
        text_encoder_2=clip(16),
        tokenizer_2=byte_tokenizer(77),
        text_encoder_3=t5,
        tokenizer_3=byte_tokenizer(10),
    ).save_pretrained(tmp_path)
    encoder = build_text_encoder("sd3", None, str(tmp_path), max_length=10)
    out = encoder.encode(["a cat", "a dog"])
    assert out.hidden.shape == (2, 77 + 10, 32)  # CLIP tokens (16 + 16 wide, padded) then T5 tokens
    assert out.pooled.shape == (2, 32)  # CLIP-L and CLIP-G pooled projections, concatenated
    assert not torch.equal(out.hidden[0], out.hidden[1])


def test_configs_load(tmp_path):
    tiny = load_train_config("training/configs/tiny.yaml", ["optim.lr=0.5", "max_steps=3"])
    assert tiny.optim.lr == 0.5 and tiny.max_steps == 3 and tiny.model.arch == "pixart"
    for name, arch in (("pixart_alpha_512", "pixart"), ("sd3_medium_512", "sd3")):
        cfg = load_train_config(f"training/configs/{name}.yaml")
        assert cfg.model.arch == arch and cfg.data.resolution == 512 and cfg.data.max_group_size == 8
        assert cfg.mixed_precision == "bf16"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-1", "optim.lr"),
        ("model.colour=red", "model.colour"),
        ("nokey", "key=value"),
        ("model.text_preset=null", "text: set a preset"),
        ("model.vae_preset=pixels", "goes with an RGB transformer preset"),
    ],
)
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config("training/configs/tiny.yaml", [override])


def test_pixel_vae_trains_and_samples_in_rgb(tmp_path):
    """The "pixels" preset: latents are the images exactly, so samples are pixels that can be measured."""
    cfg = tiny_config(
        tmp_path, "max_steps=2", "checkpoint_every=2", "model.vae_preset=pixels",
        "model.transformer_preset=pixart-tiny-rgb",
    )  # fmt: skip
    batch = random_batch(groups=2, n=2, resolution=16, seed=0)
    main(cfg, data=itertools.repeat(batch))
    _, transformer, encoders, context = load_checkpoint(
        latest_checkpoint(tmp_path), "ema", torch.device("cpu")
    )
    images = batch["images"].flatten(0, 1)
    latents = encoders.latents(images, None, torch.Generator())
    assert torch.equal(latents, images) and torch.equal(encoders.decode(latents), images)
    assert encoders.pixels_per_latent == 1 and encoders.vae.state_dict() == {}
    denoiser = Denoiser(transformer, "pixart", 1)
    sampled = sample_groups(
        denoiser, context, encoders, batch["captions"], (3, 16, 16), "flow", 2, 2.0, torch.Generator()
    )
    assert sampled.shape == (2, 2, 3, 16, 16) and sampled.isfinite().all()
