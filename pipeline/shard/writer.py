"""Writing one shard: group samples into a tar under a temporary name, renamed into place when complete.

A sample is ``{group_id}.json`` followed by ``{group_id}.{i}.{ext}`` for each image in group order (group
ids are dot-free, so webdataset splits keys correctly). Headers come from ``tarfile`` (ustar, mtime 0,
uid 0, mode 0644) and data is written straight after them, so the same plan always gives byte-identical
tars, exactly as ``tarfile`` would write them (the runner records each tar's sha256 in the manifest).

Inputs: one ``ShardWork`` and a function reading an image's bytes. Outputs: the tar, its index rows and
the drops of groups whose image could not be re-encoded.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import tmp_path
from pipeline.shard.config import ShardConfig
from pipeline.shard.images import ImageInfo
from pipeline.shard.plan import GroupRecord, ShardWork, sample_json

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


class ImageError(Exception):
    """An image that could not be decoded for re-encoding; its group is dropped."""


class GroupShardWriter:
    """One tar of group samples, written under a temporary name; ``commit`` renames it into place."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tmp = tmp_path(self.path)
        self._raw = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self.position = 0

    def _write(self, data: bytes) -> None:
        self._raw.write(data)
        self.position += len(data)

    def add(self, members: list[tuple[str, bytes]]) -> tuple[int, int]:
        """Append one sample's files in order; returns (offset of its first header, bytes it takes)."""
        start = self.position
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            self._write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
            self._write(data)
            if len(data) % tarfile.BLOCKSIZE:
                self._write(tarfile.NUL * (tarfile.BLOCKSIZE - len(data) % tarfile.BLOCKSIZE))
        return start, self.position - start

    def commit(self) -> int:
        """Close the archive, flush it to disk and rename it into place; returns its size in bytes."""
        self._write(tarfile.NUL * 2 * tarfile.BLOCKSIZE)  # end of archive, then pad the last record
        if self.position % tarfile.RECORDSIZE:
            self._write(tarfile.NUL * (tarfile.RECORDSIZE - self.position % tarfile.RECORDSIZE))
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self.tmp, self.path)
        return self.position

    def abort(self) -> None:
        self._raw.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> GroupShardWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


def _reencode(data: bytes, cfg: ShardConfig) -> tuple[bytes, str, int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if cfg.reencode_format == "JPEG" and image.mode != "RGB":
                image = image.convert("RGB")
            image.thumbnail((cfg.max_side, cfg.max_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            image.save(out, format=cfg.reencode_format, quality=cfg.quality)
            return out.getvalue(), cfg.reencode_format, image.width, image.height
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(f"{type(err).__name__}: {err}") from err


def sample_members(
    record: GroupRecord, images: dict[str, ImageInfo], read: Callable[[ImageInfo], bytes], cfg: ShardConfig
) -> list[tuple[str, bytes]]:
    """The tar members of one group: its json, then each image (stored bytes, or resized if configured)."""
    members, sizes = [], []
    for i, image_id in enumerate(record.image_ids):
        info = images[image_id]
        data, fmt, width, height = read(info), info.format, info.width, info.height
        if cfg.max_side is not None and max(width, height) > cfg.max_side:
            try:
                data, fmt, width, height = _reencode(data, cfg)
            except ImageError as err:
                raise ImageError(f"image {i} ({image_id}): {err}") from err
        ext = EXTENSIONS.get(fmt.upper(), fmt.lower())
        members.append((f"{record.group_id}.{i}.{ext}", data))
        sizes.append([width, height])
    return [(f"{record.group_id}.json", sample_json(record, sizes)), *members]


def write_shard(
    cfg: ShardConfig, work: ShardWork, read: Callable[[ImageInfo], bytes], out_dir: Path
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Write ``out_dir/work.name`` atomically; returns its index rows and drops.

    A shard whose every group was dropped is not written (a tar with no member is no webdataset shard):
    it has no index rows, only drops.
    """
    index, drops = [], []
    out_dir.mkdir(parents=True, exist_ok=True)
    with GroupShardWriter(out_dir / work.name) as writer:
        for record in work.records:
            try:
                members = sample_members(record, work.images, read, cfg)
            except ImageError as err:
                drops.append(drop_row(record.group_id, DropKind.GROUP, DropReason.DECODE_ERROR, str(err)))
                continue
            offset, size = writer.add(members)
            n = len(record.image_ids)
            index.append(
                {"shard": work.name, "group_id": record.group_id, "n": n, "bytes": size, "offset": offset}
            )
        if index:
            writer.commit()
        else:
            writer.abort()
    return index, drops
