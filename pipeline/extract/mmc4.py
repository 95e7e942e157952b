"""MMC4 jsonl, jsonl.gz and jsonl.zip -> parts without reading the shards, and lines -> ``Document`` items.

Plain ``.jsonl`` is split by byte ranges, the way Hadoop and Spark split text: a part seeks to its start,
skips the line in progress and reads every line that *starts* before its end, so each line belongs to
exactly one part and no part reads what comes before it. The part size in bytes is ``docs_per_part``
times the mean line length of the file's first MiB (the only bytes planning reads).

Compressed shards (``.jsonl.gz``, and each jsonl inside a ``.jsonl.zip``, MMC4's published form) are one
part each, read in one streaming pass: deflate has no random access, so splitting one means decompressing
from the start for every part (quadratic) or a full decompression at planning to build an index (the cost
planning must not have). Published MMC4 shards hold a few thousand documents, a part's worth.

A line that is not a JSON object, or an ``image_info`` entry without a usable ``matched_text_index``, is a
record for the drops table; a truncated or corrupt stream keeps what was read and records the rest as
unreadable from that offset.
"""

from __future__ import annotations

import gzip
import json
import os
import zipfile
from collections.abc import Iterator

from pipeline.extract.document import Document, ImageRef
from pipeline.extract.inputs import READ_ERRORS, InputFile, is_remote, name_of, open_binary, parent_of
from pipeline.extract.parts import PartSpec, unreadable

_HEAD_BYTES = 1 << 20


def shard_stem(name: str) -> str:
    lower = name.lower()
    for suffix in (".jsonl.zip", ".jsonl.gz", ".jsonl"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def plan_mmc4(file: InputFile, docs_per_part: int) -> list[PartSpec]:
    lower = file.uri.lower()
    try:
        if lower.endswith(".jsonl.gz"):
            return [PartSpec("mmc4", file.uri, 0, -1)]
        if lower.endswith(".jsonl.zip"):
            with open_binary(file.uri) as fh, zipfile.ZipFile(fh) as archive:
                members = sorted(n for n in archive.namelist() if n.lower().endswith((".jsonl", ".json")))
            if not members:
                return [PartSpec("mmc4", file.uri, error="the zip holds no .jsonl file")]
            return [PartSpec("mmc4", file.uri, 0, -1, member=m) for m in members]
        with open_binary(file.uri) as fh:
            head = fh.read(_HEAD_BYTES)
            size = fh.seek(0, os.SEEK_END)
    except READ_ERRORS as err:  # missing permission, bad zip directory, ...
        return [PartSpec("mmc4", file.uri, error=f"{type(err).__name__}: {err}")]
    line_bytes = max(len(head) // max(head.count(b"\n"), 1), 1)
    step = line_bytes * docs_per_part
    return [PartSpec("mmc4", file.uri, start, min(start + step, size)) for start in range(0, size, step)]


def _range_lines(spec: PartSpec) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of every line starting in [start, stop)."""
    with open_binary(spec.path) as fh:
        position = spec.start
        if position > 0:  # the line in progress at start belongs to the part before
            fh.seek(position - 1)
            position += len(fh.readline()) - 1
        while position < spec.stop:
            line = fh.readline()
            if not line:
                break
            yield position, line
            position += len(line)


def _stream_lines(spec: PartSpec) -> Iterator[tuple[int, bytes]]:
    """(offset in the decompressed stream, line) of every line of a compressed shard."""
    with open_binary(spec.path) as raw:
        if spec.member:
            archive = zipfile.ZipFile(raw)
            stream = archive.open(spec.member)
        else:
            stream = gzip.GzipFile(fileobj=raw)
        with stream:
            position = 0
            for line in stream:
                yield position, line
                position += len(line)


def read_mmc4(spec: PartSpec, image_dir: str | None) -> Iterator[Document]:
    where = f"{spec.path}/{spec.member}" if spec.member else spec.path
    if spec.error:
        yield unreadable(where, "", spec.error)
        return
    label = f"{name_of(spec.path)}/{spec.member}" if spec.member else name_of(spec.path)
    images = _image_folder(spec, image_dir)
    folder = parent_of(spec.path)
    lines = _range_lines(spec) if spec.stop >= 0 else _stream_lines(spec)
    next_offset = max(spec.start, 0)
    try:
        for offset, line in lines:
            next_offset = offset + len(line)
            if line.strip():
                text = line.decode("utf-8", errors="replace")
                yield mmc4_document(text, f"{label}#offset={offset}", folder, images)
    except READ_ERRORS as err:  # truncated gzip (EOFError), corrupt deflate (zlib.error), bad zip, I/O
        stream = "decompressed stream" if spec.stop < 0 else "file"
        yield unreadable(where, f"unreadable from byte {next_offset} of the {stream}", err)


def _image_folder(spec: PartSpec, image_dir: str | None) -> str | None:
    """``mmc4_image_dir`` for this shard: ``{shard}`` is the shard's name without its extensions, and a
    relative folder lies beside the shard."""
    if not image_dir:
        return None
    folder = image_dir.replace("{shard}", shard_stem(name_of(spec.path)))
    if is_remote(folder):
        return folder.rstrip("/")
    if is_remote(spec.path):
        return folder if os.path.isabs(folder) else f"{parent_of(spec.path)}/{folder}".rstrip("/")
    return os.path.realpath(os.path.join(parent_of(spec.path), os.path.expanduser(folder)))


def _matched_index(info: object) -> int | None:
    value = info.get("matched_text_index") if isinstance(info, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def mmc4_document(line: str, fallback_source: str, folder: str, image_dir: str | None) -> Document:
    """An image goes before the sentence it was matched to (the OpenFlamingo convention), images ordered
    by ``matched_text_index``, ties by list order."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return Document(source=fallback_source, base=folder, error=f"invalid JSON: {err}")
    if not isinstance(record, dict):
        return Document(source=fallback_source, base=folder, error="a line must hold a JSON object")
    source = record.get("url") or fallback_source
    texts, infos = record.get("text_list"), record.get("image_info") or []
    if not isinstance(texts, list) or not isinstance(infos, list):
        return Document(source=source, base=folder, error="text_list and image_info must be lists")
    local_images = image_dir if image_dir and not is_remote(image_dir) else None
    doc = Document(source=source, base=image_dir or folder, root=local_images)
    placed = []
    for number, info in enumerate(infos):
        index = _matched_index(info)
        if index is None:
            doc.rejected.append(f"image_info[{number}] has no integer matched_text_index")
        else:
            placed.append((index, number, info))
    placed.sort(key=lambda entry: entry[:2])
    cursor = 0
    for index, text in enumerate(texts):
        while cursor < len(placed) and placed[cursor][0] <= index:
            doc.items.append(_mmc4_ref(placed[cursor][2], image_dir))
            cursor += 1
        if text is not None:
            doc.items.append(str(text))
    doc.items.extend(_mmc4_ref(info, image_dir) for _, _, info in placed[cursor:])
    return doc


def _mmc4_ref(info: dict, image_dir: str | None) -> ImageRef:
    raw_url = info.get("raw_url")
    raw_url = str(raw_url) if raw_url else None
    if image_dir:
        name = info.get("image_name")
        return ImageRef(ref=str(name), fallback=raw_url) if name else ImageRef(ref=raw_url or "")
    return ImageRef(ref=raw_url or "")
