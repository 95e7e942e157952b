"""Image encoders behind one interface (``ImageEncoder``); ``build_encoder`` picks one from the config.

Adding an encoder: subclass ``ImageEncoder`` in its own module and add it to ``build_encoder``.
"""

from __future__ import annotations

from classifier.encoders.base import (
    EncoderConfig,
    EncoderId,
    EncoderMismatchError,
    ImageEncoder,
    require_same_encoder,
)


def build_encoder(cfg: EncoderConfig) -> ImageEncoder:
    """Load the encoder ``cfg`` names (imports stay lazy: each backend pulls in its own libraries)."""
    kind = cfg.resolved_kind()
    if kind == "open_clip":
        from classifier.encoders.openclip import OpenClipEncoder

        return OpenClipEncoder(cfg)
    from classifier.encoders.efficientnet import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder(cfg)


__all__ = [
    "EncoderConfig",
    "EncoderId",
    "EncoderMismatchError",
    "ImageEncoder",
    "build_encoder",
    "require_same_encoder",
]
