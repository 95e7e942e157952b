"""OBELICS parquet -> parts from the footer, and rows -> ``Document`` items (texts[i] / images[i]).

Planning reads only each file's footer (row counts per row group). A part is a range of rows; reading it
decodes only the row groups that hold those rows, one row group at a time, so a corrupt row group costs
its rows (one unreadable-input record naming the file and row group), not the file or the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow.parquet as pq

from pipeline.extract.document import Document, ImageRef
from pipeline.extract.inputs import READ_ERRORS, InputFile, name_of, open_binary, parent_of
from pipeline.extract.parts import PartSpec, unreadable

_COLUMNS = ("texts", "images", "metadata", "general_metadata")


def plan_obelics(file: InputFile, docs_per_part: int) -> list[PartSpec]:
    try:
        with open_binary(file.uri) as fh:
            count = pq.ParquetFile(fh).metadata.num_rows
    except READ_ERRORS as err:
        detail = f"not a readable parquet file: {type(err).__name__}: {err}"
        return [PartSpec("obelics", file.uri, error=detail)]
    return [
        PartSpec("obelics", file.uri, start, min(start + docs_per_part, count))
        for start in range(0, count, docs_per_part)
    ]


def read_obelics(spec: PartSpec) -> Iterator[Document]:
    name, folder = name_of(spec.path), parent_of(spec.path)
    try:
        fh = open_binary(spec.path)
        file = pq.ParquetFile(fh)
    except READ_ERRORS as err:
        yield unreadable(spec.path, f"rows {spec.start}-{spec.stop - 1}", err)
        return
    with fh:
        columns = [c for c in _COLUMNS if c in file.schema_arrow.names]
        offset = 0
        for group in range(file.num_row_groups):
            n = file.metadata.row_group(group).num_rows
            if offset + n > spec.start and offset < spec.stop:
                lo, hi = max(spec.start - offset, 0), min(spec.stop - offset, n)
                try:
                    rows = file.read_row_group(group, columns=columns).slice(lo, hi - lo).to_pylist()
                except READ_ERRORS as err:
                    where = f"row group {group} (rows {offset + lo}-{offset + hi - 1})"
                    yield unreadable(spec.path, where, err)
                else:
                    for row_number, row in enumerate(rows, start=offset + lo):
                        yield obelics_document(row, f"{name}#row={row_number}", folder)
            offset += n


def _json_field(value: object, default: object) -> object:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return default
    return value


def obelics_document(row: dict, fallback_source: str, folder: str) -> Document:
    general = _json_field(row.get("general_metadata"), {})
    url = general.get("url") if isinstance(general, dict) else None
    source = url or fallback_source
    texts, images = row.get("texts"), row.get("images")
    if not isinstance(texts, list) or not isinstance(images, list) or len(texts) != len(images):
        detail = "texts and images must be lists of equal length"
        if isinstance(texts, list) and isinstance(images, list):
            detail = f"texts has {len(texts)} entries but images has {len(images)}"
        return Document(source=source, base=folder, error=detail)
    metadata = _json_field(row.get("metadata"), [])
    metadata = (
        metadata if isinstance(metadata, list) and len(metadata) == len(images) else [None] * len(images)
    )
    doc = Document(source=source, base=folder)
    for text, image, meta in zip(texts, images, metadata, strict=True):
        if image is not None:
            alt = meta.get("alt_text") if isinstance(meta, dict) else None
            doc.items.append(ImageRef(ref=str(image), alt=alt))
        elif text is not None:
            doc.items.append(str(text))
    return doc
