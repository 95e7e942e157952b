"""Builds the three models a group-DiT run needs: transformer, VAE and text encoder.

Each comes either from a local diffusers folder (`pretrained`, the layout of e.g.
PixArt-alpha/PixArt-XL-2-512x512: transformer/, vae/, text_encoder/, tokenizer/) or, randomly
initialised, from a named preset: tiny ones for tests and the CPU demo, full-size ones for throughput
and MFU measurements. Nothing is downloaded. Outputs: a stock diffusers transformer, an `AutoencoderKL`,
and a text encoder whose `encode(captions)` gives per-token embeddings, their mask and (SD3) pooled ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from diffusers import (
    AutoencoderKL,
    FluxTransformer2DModel,
    PixArtTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import (
    AutoTokenizer,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
)

#################################################################################
#                          Transformer presets (factory)                        #
#################################################################################

# PixArt-XL/2 is PixArtTransformer2DModel's defaults plus the release's 4096-wide T5 caption projection;
# 512 px -> 64x64 latents.
TRANSFORMER_PRESETS: dict[str, tuple[type, dict]] = {
    "pixart-tiny": (
        PixArtTransformer2DModel,
        dict(
            sample_size=16,
            num_layers=2,
            num_attention_heads=2,
            attention_head_dim=16,
            cross_attention_dim=32,
            caption_channels=32,
        ),
    ),
    # The same on RGB pixels (the "pixels" VAE preset): 16 px images are 64 tokens of 2x2 pixel patches.
    "pixart-tiny-rgb": (
        PixArtTransformer2DModel,
        dict(
            sample_size=16,
            in_channels=3,
            num_layers=2,
            num_attention_heads=2,
            attention_head_dim=16,
            cross_attention_dim=32,
            caption_channels=32,
        ),
    ),
    "pixart-xl-2-512": (PixArtTransformer2DModel, dict(sample_size=64, caption_channels=4096)),
    "sd3-tiny": (
        SD3Transformer2DModel,
        dict(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            caption_projection_dim=32,
            pooled_projection_dim=32,
            pos_embed_max_size=32,
        ),
    ),
    # FLUX-style double- and single-stream blocks; 8x8x4 latents become 16 tokens of 2x2 patches (16 wide).
    "flux-tiny": (
        FluxTransformer2DModel,
        dict(
            in_channels=16,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=(4, 6, 6),
        ),
    ),
    # SD3-medium (2B): 24 layers of 24 heads x 64; 512 px crops its 192-wide position table to 64 latents.
    "sd3-medium": (
        SD3Transformer2DModel,
        dict(
            sample_size=64,
            num_layers=24,
            attention_head_dim=64,
            num_attention_heads=24,
            joint_attention_dim=4096,
            caption_projection_dim=1536,
            pooled_projection_dim=2048,
            pos_embed_max_size=192,
        ),
    ),
}

RGB_PRESETS = {"pixart-tiny-rgb"}  # transformers over RGB pixels, for the "pixels" VAE preset

ARCH_CLASSES = {
    "pixart": PixArtTransformer2DModel,
    "sd3": SD3Transformer2DModel,
    "flux": FluxTransformer2DModel,
}


def build_transformer(arch: str, preset: str | None, pretrained: str | None) -> torch.nn.Module:
    """A stock diffusers transformer: random from `preset`, else loaded from `pretrained`/transformer."""
    if preset is not None:
        cls, kwargs = TRANSFORMER_PRESETS[preset]
        if cls is not ARCH_CLASSES[arch]:
            raise ValueError(f"preset {preset!r} is not a {arch} transformer")
        return cls(**kwargs)
    if pretrained is None:
        raise ValueError("the transformer needs a preset or a pretrained path")
    return ARCH_CLASSES[arch].from_pretrained(pretrained, subfolder="transformer")


#################################################################################
#                                      VAE                                      #
#################################################################################


class PixelAutoencoder(torch.nn.Module):
    """The identity "VAE": latents are the RGB pixels themselves (3 channels, no downsampling).

    For pixel-space diffusion on tiny images, where a random autoencoder's latents could not be decoded
    back into images that can be measured. It speaks the `AutoencoderKL` interface the trainer uses.
    """

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(
            latent_channels=3, block_out_channels=(3,), scaling_factor=1.0, shift_factor=None
        )
        # Holds no weights: this empty buffer only tells the device and dtype the module was moved to.
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype

    def encode(self, images: torch.Tensor) -> SimpleNamespace:
        """(R, 3, H, W) -> a posterior with mean = the images and std = 0 (latents are exact)."""
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=images, std=torch.zeros_like(images)))

    def decode(self, latents: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(sample=latents)


def build_vae(preset: str | None, pretrained: str | None) -> AutoencoderKL | PixelAutoencoder:
    """AutoencoderKL: "tiny" (2 levels, 4 latent channels, 2x downsampling) or `pretrained`/vae; or
    "pixels", the identity on RGB pixels (pair it with an RGB transformer preset such as pixart-tiny-rgb)."""
    if preset == "pixels":
        return PixelAutoencoder()
    if preset == "tiny":
        return AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(32, 64),
            latent_channels=4,
            sample_size=32,
        )
    if preset is not None:
        raise ValueError(f"unknown VAE preset {preset!r}; choose 'tiny' or 'pixels'")
    if pretrained is None:
        raise ValueError("the VAE needs a preset or a pretrained path")
    return AutoencoderKL.from_pretrained(pretrained, subfolder="vae")


#################################################################################
#                                  Text encoders                                #
#################################################################################


@dataclass
class TextEmbeddings:
    """Per-caption text conditioning, one row per caption (= per image)."""

    hidden: torch.Tensor  # (N, T, D)
    mask: torch.Tensor  # (N, T), 1 = real token
    pooled: torch.Tensor | None = None  # (N, P), SD3 only


def byte_tokenizer(max_length: int) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with no merges: any text, offline, 259 ids (<pad>, </s>, <unk> + 256 bytes)."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    tok = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def tiny_text_model(kind: str, max_length: int) -> torch.nn.Module:
    """Random 2-layer, 32-wide T5 encoder or CLIP text model over the byte tokenizer's ids."""
    if kind == "t5":
        return T5EncoderModel(
            T5Config(vocab_size=259, d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2)
        )
    config = CLIPTextConfig(
        vocab_size=259,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=max_length,
        projection_dim=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    return CLIPTextModelWithProjection(config)


class TextEncoder(torch.nn.Module):
    """Frozen caption encoder: T5 (PixArt) or CLIP text with projection (tiny SD3-style, pooled output)."""

    def __init__(self, kind: str, model: torch.nn.Module, tokenizer, max_length: int):
        super().__init__()
        self.kind, self.model, self.tokenizer, self.max_length = kind, model, tokenizer, max_length
        self.model.requires_grad_(False).eval()

    @torch.no_grad()
    def encode(self, captions: list[str]) -> TextEmbeddings:
        """Captions (N) -> TextEmbeddings with hidden (N, max_length, D)."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            captions, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        ).to(device)
        out = self.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)
        pooled = out.text_embeds if self.kind == "clip" else None
        hidden = out.last_hidden_state
        return TextEmbeddings(hidden=hidden, mask=tokens.attention_mask, pooled=pooled)


class SD3TextEncoder(torch.nn.Module):
    """SD3's frozen CLIP-L, CLIP-G and T5-XXL, combined exactly as its diffusers pipeline does."""

    kind = "sd3"

    def __init__(self, pipeline: StableDiffusion3Pipeline, max_length: int):
        super().__init__()
        self.pipeline, self.max_length = pipeline, max_length
        self.encoders = (
            torch.nn.ModuleList([pipeline.text_encoder, pipeline.text_encoder_2, pipeline.text_encoder_3])
            .requires_grad_(False)
            .eval()
        )

    @torch.no_grad()
    def encode(self, captions: list[str]) -> TextEmbeddings:
        """Captions (N) -> hidden (N, 77 + max_length, 4096), pooled (N, 2048) for SD3-medium."""
        device = next(self.parameters()).device
        hidden, _, pooled, _ = self.pipeline.encode_prompt(
            prompt=captions,
            prompt_2=None,
            prompt_3=None,
            device=device,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_length,
        )
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=device)  # SD3 attends to padding too
        return TextEmbeddings(hidden=hidden, mask=mask, pooled=pooled)


def build_text_encoder(
    kind: str, preset: str | None, pretrained: str | None, max_length: int
) -> TextEncoder | SD3TextEncoder:
    """A "tiny" random encoder with the byte tokenizer, or one loaded from the `pretrained` folder."""
    if kind == "sd3":
        if preset is not None or pretrained is None:
            raise ValueError("the sd3 text encoders load from a pretrained SD3 folder; they have no preset")
        pipeline = StableDiffusion3Pipeline.from_pretrained(pretrained, transformer=None, vae=None)
        return SD3TextEncoder(pipeline, max_length)
    if preset == "tiny":
        return TextEncoder(kind, tiny_text_model(kind, max_length), byte_tokenizer(max_length), max_length)
    if preset is not None:
        raise ValueError(f"unknown text encoder preset {preset!r}; the only one is 'tiny'")
    if pretrained is None:
        raise ValueError("the text encoder needs a preset or a pretrained path")
    cls = T5EncoderModel if kind == "t5" else CLIPTextModelWithProjection
    model = cls.from_pretrained(pretrained, subfolder="text_encoder")
    tokenizer = AutoTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
    return TextEncoder(kind, model, tokenizer, max_length)


def save_tiny_pipeline(folder: Path, arch: str, text_kind: str, max_length: int) -> Path:
    """Write random tiny components in the diffusers folder layout, so loading from a path can be tested."""
    folder = Path(folder)
    build_transformer(arch, f"{arch}-tiny", None).save_pretrained(folder / "transformer")
    build_vae("tiny", None).save_pretrained(folder / "vae")
    encoder = build_text_encoder(text_kind, "tiny", None, max_length)
    encoder.model.save_pretrained(folder / "text_encoder")
    encoder.tokenizer.save_pretrained(folder / "tokenizer")
    return folder
