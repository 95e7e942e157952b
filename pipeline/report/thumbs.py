"""Thumbnails for the report: small JPEG files under ``report/img/`` made from ``extract/images`` bytes.

Sections ask for image ids while they are built; ``write`` then makes every thumbnail in one pass over
the images table. It reads the ``image_id`` column of each part, and the bytes of a row group only when
that row group holds a wanted image, so memory stays at one row group however large the run is.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from manifests.storage import AnyPath, parquet_file
from manifests.tables import part_files

THUMB_DIR = "img"
BombWarning = Image.DecompressionBombWarning
MAX_PIXELS = 64_000_000  # stored images passed extract's caps; this only guards against a tampered table


class ThumbnailSet:
    """The image ids a page shows, and after ``write``, the relative path of each thumbnail made."""

    def __init__(self, size: int):
        self.size = size
        self.wanted: set[str] = set()
        self.paths: dict[str, str] = {}  # image_id -> "img/<id>.jpg", for those written

    def want(self, image_ids: list[str] | tuple[str, ...]) -> None:
        self.wanted.update(i for i in image_ids if i)

    def src(self, image_id: str) -> str | None:
        return self.paths.get(image_id)

    def write(self, run: AnyPath, out: Path) -> int:
        """Make the thumbnails of every wanted image found in ``extract/images``; returns how many."""
        folder = Path(out) / THUMB_DIR
        folder.mkdir(parents=True, exist_ok=True)
        todo = set(self.wanted)
        for path in part_files(run, "extract", "images"):
            if not todo:
                break
            self._from_part(path, todo, folder)
        return len(self.paths)

    def _from_part(self, path: Path, todo: set[str], folder: Path) -> None:
        reader = parquet_file(path)
        ids = reader.read(columns=["image_id"]).column("image_id")
        hits = pc.is_in(ids, value_set=pa.array(sorted(todo), pa.string()))
        if not pc.any(hits).as_py():
            return
        start = 0
        for rg in range(reader.metadata.num_row_groups):
            n = reader.metadata.row_group(rg).num_rows
            if pc.any(hits.slice(start, n)).as_py():
                table = reader.read_row_group(rg, columns=["image_id", "bytes"])
                for image_id, data in zip(
                    table.column("image_id").to_pylist(), table.column("bytes"), strict=True
                ):
                    if image_id in todo:
                        todo.discard(image_id)
                        self._make(image_id, data.as_py(), folder)
                del table
            start += n

    def _make(self, image_id: str, data: bytes, folder: Path) -> None:
        name = f"{image_id[:24]}.jpg"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", BombWarning)
                with Image.open(io.BytesIO(data)) as image:
                    if image.width * image.height > MAX_PIXELS:
                        return
                    image.draft("RGB", (self.size, self.size))  # JPEG: decode at a reduced scale
                    thumb = _on_white(image)
                    thumb.thumbnail((self.size, self.size))
                    thumb.save(folder / name, "JPEG", quality=80)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, BombWarning):
            return  # the page shows "no preview" for it
        self.paths[image_id] = f"{THUMB_DIR}/{name}"


def _on_white(image: Image.Image) -> Image.Image:
    """RGB for JPEG; transparent pixels (glyphs, logos) become white rather than black."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
