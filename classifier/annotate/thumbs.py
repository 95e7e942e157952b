"""Thumbnails of the run's images, made once and cached in ``RUN/labels/thumbs/``.

A thumbnail is named by its image id only (64 lowercase hex characters, checked) and made only for
ids that the index knows, so the route that serves them cannot be steered to any other file.
"""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path

from PIL import Image, ImageOps

from classifier.annotate.index import GroupIndex

IMAGE_ID = re.compile(r"[0-9a-f]{64}")


def valid_image_id(image_id: str) -> bool:
    return IMAGE_ID.fullmatch(image_id) is not None


class ThumbnailCache:
    def __init__(self, folder: Path, index: GroupIndex, size: int):
        self.folder = folder
        self.index = index
        self.size = size
        self._lock = threading.Lock()

    def path(self, image_id: str) -> Path | None:
        """The cached JPEG thumbnail of an image of this run (made on first use), or None."""
        if not valid_image_id(image_id):
            return None
        path = self.folder / image_id[:2] / f"{image_id}.jpg"
        if path.exists():
            return path
        data = self.index.image_bytes(image_id)
        if data is None:
            return None
        with self._lock:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{image_id}.{os.getpid()}.tmp")
                tmp.write_bytes(make_thumbnail(data, self.size))
                tmp.replace(path)  # never a half-written thumbnail under the final name
        return path


def make_thumbnail(data: bytes, size: int) -> bytes:
    """JPEG bytes of the image shrunk to fit size x size (transparency flattened onto white)."""
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        image.thumbnail((size, size))
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, "white")
            background.paste(image, mask=image.getchannel("A"))
            image = background
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()
