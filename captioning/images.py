"""Image bytes -> base64 data URI for a chat request, downscaled so the longer side is at most max_side.

Images already small enough and in a format every server reads are sent as they are (no re-encode):
extract has decoded and normalised them, and re-encoding costs more CPU than the request itself.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

PASS_THROUGH = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def to_data_uri(data: bytes, max_side: int, jpeg_quality: int = 90) -> str:
    """``data`` as a data URI with longer side <= max_side: as is when it fits, else resized as PNG/JPEG."""
    with Image.open(io.BytesIO(data)) as img:
        if max(img.size) <= max_side and img.format in PASS_THROUGH:
            return _uri(PASS_THROUGH[img.format], data)
        img.load()
        if max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        # JPEG keeps requests small; PNG only where transparency would otherwise be lost.
        has_alpha = img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info)
        out = io.BytesIO()
        if has_alpha:
            img.convert("RGBA").save(out, format="PNG")
            mime = "image/png"
        else:
            img.convert("RGB").save(out, format="JPEG", quality=jpeg_quality)
            mime = "image/jpeg"
    return _uri(mime, out.getvalue())
