"""Writing one shard: group samples into a tar, written all-or-nothing (local or on an object store).

A sample is ``{group_id}.json`` followed by ``{group_id}.{i}.{ext}`` for each image in group order (group
ids are dot-free, so webdataset splits keys correctly). Headers come from ``tarfile`` (ustar, mtime 0,
uid 0, mode 0644) and data is written straight after them, so the same plan always gives byte-identical
tars, exactly as ``tarfile`` would write them; the tar's sha256 is computed while it is written and goes
through the part's marker into the manifest.

Inputs: one ``ShardWork`` and a function reading an image's bytes. Outputs: the tar, its index rows and
the drops of groups whose image could not be re-encoded.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from PIL import Image

from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import record_write
from manifests.storage import AnyPath, make_dirs, open_output
from pipeline.shard.config import ShardConfig
from pipeline.shard.images import ImageInfo
from pipeline.shard.plan import GroupRecord, ShardWork, sample_json

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


class ImageError(Exception):
    """An image that could not be decoded for re-encoding; its group is dropped."""


class _Aborted(Exception):
    """Raised into the open output to throw the tar away."""


class GroupShardWriter:
    """One tar of group samples (see ``manifests.storage.open_output``): ``commit`` puts it in place and
    records it for the part's marker; ``abort`` throws it away."""

    def __init__(self, path: AnyPath):
        self.path = path
        self._stack = ExitStack()
        # tars are read by trainers, later and elsewhere: not kept in this machine's page cache
        self._output = self._stack.enter_context(open_output(path, keep_cached=False))
        self._raw = self._output.writer
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
        """Close the archive and put it in place; returns its size in bytes."""
        self._write(tarfile.NUL * 2 * tarfile.BLOCKSIZE)  # end of archive, then pad the last record
        if self.position % tarfile.RECORDSIZE:
            self._write(tarfile.NUL * (tarfile.RECORDSIZE - self.position % tarfile.RECORDSIZE))
        self._stack.close()
        assert self._output.written is not None
        record_write(self.path, self._output.written)
        return self.position

    def abort(self) -> None:
        self._stack.__exit__(_Aborted, _Aborted(), None)

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
    cfg: ShardConfig, work: ShardWork, read: Callable[[ImageInfo], bytes], out_dir: AnyPath
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Write ``out_dir/work.name`` atomically; returns its index rows and drops.

    A shard whose every group was dropped is not written (a tar with no member is no webdataset shard):
    it has no index rows, only drops.
    """
    index, drops = [], []
    make_dirs(out_dir)
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
