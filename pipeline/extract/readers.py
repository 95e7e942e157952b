"""Document readers: OBELICS parquet, MMC4 jsonl(.gz) and folders of HTML pages -> ``Document`` items.

A reader turns one input into documents, each an ordered list of text blocks and image references, the
way the document had them. Inputs are cut into parts of ``docs_per_part`` documents in input order, so the
same input always gives the same parts whatever the number of workers.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.errors import UserError
from pipeline.extract.document import Document, ImageRef
from pipeline.extract.html import parse_html


@dataclass(frozen=True)
class PartSpec:
    format: str
    path: str  # the input file (parquet, jsonl) or, for HTML, unused
    start: int = 0
    stop: int = 0
    pages: tuple[str, ...] = ()  # HTML page files of this part


FORMATS = ("obelics", "mmc4", "html")


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def detect_format(path: Path) -> str:
    if not path.exists():
        raise UserError(f"input not found: {path}")
    candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for candidate in candidates:
        name = candidate.name.lower()
        if name.endswith(".parquet"):
            return "obelics"
        if name.endswith((".jsonl", ".jsonl.gz")):
            return "mmc4"
        if name.endswith((".html", ".htm")):
            return "html"
    raise UserError(
        f"cannot tell the format of {path}: no .parquet, .jsonl(.gz) or .html files; use --format"
    )


def _open_text(path: Path):
    return (
        gzip.open(path, "rt", encoding="utf-8", errors="replace")
        if path.suffix == ".gz"
        else open(path, encoding="utf-8", errors="replace")
    )


def plan_parts(path: Path, fmt: str, docs_per_part: int) -> list[PartSpec]:
    """Cut the input into parts of at most ``docs_per_part`` documents, in input order."""
    specs: list[PartSpec] = []
    if fmt == "html":
        pages = [str(p) for p in _files(path, (".html", ".htm"))]
        for start in range(0, len(pages), docs_per_part):
            specs.append(PartSpec("html", str(path), pages=tuple(pages[start : start + docs_per_part])))
    else:
        suffixes = (".parquet",) if fmt == "obelics" else (".jsonl", ".jsonl.gz")
        for file in _files(path, suffixes):
            if fmt == "obelics":
                try:
                    count = pq.ParquetFile(file).metadata.num_rows
                except Exception as err:
                    raise UserError(f"{file} is not a readable parquet file: {err}") from err
            else:
                with _open_text(file) as fh:
                    count = sum(1 for _ in fh)
            for start in range(0, count, docs_per_part):
                specs.append(PartSpec(fmt, str(file), start, min(start + docs_per_part, count)))
    if not specs:
        raise UserError(f"no {fmt} documents found in {path}")
    return specs


def read_part(spec: PartSpec, mmc4_image_dir: str | None = None) -> list[Document]:
    if spec.format == "obelics":
        return list(_read_obelics(spec))
    if spec.format == "mmc4":
        return list(_read_mmc4(spec, mmc4_image_dir))
    return [_read_html(Path(page)) for page in spec.pages]


# ---------------------------------------------------------------------------------------------------------
# OBELICS: texts[i] / images[i], exactly one set per position
# ---------------------------------------------------------------------------------------------------------


def _rows(path: Path, start: int, stop: int) -> Iterator[dict]:
    """Rows [start, stop) of a parquet file, reading only the row groups that hold them."""
    file = pq.ParquetFile(path)
    offset = 0
    for group in range(file.num_row_groups):
        n = file.metadata.row_group(group).num_rows
        if offset + n > start and offset < stop:
            table = file.read_row_group(group)
            lo, hi = max(start - offset, 0), min(stop - offset, n)
            yield from table.slice(lo, hi - lo).to_pylist()
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


def _read_obelics(spec: PartSpec) -> Iterator[Document]:
    path = Path(spec.path)
    for row_number, row in enumerate(_rows(path, spec.start, spec.stop), start=spec.start):
        general = _json_field(row.get("general_metadata"), {})
        url = general.get("url") if isinstance(general, dict) else None
        source = url or f"{path.name}#row={row_number}"
        texts, images = row.get("texts"), row.get("images")
        if not isinstance(texts, list) or not isinstance(images, list) or len(texts) != len(images):
            detail = "texts and images must be lists of equal length"
            if isinstance(texts, list) and isinstance(images, list):
                detail = f"texts has {len(texts)} entries but images has {len(images)}"
            yield Document(source=source, base=str(path.parent), error=detail)
            continue
        metadata = _json_field(row.get("metadata"), [])
        metadata = (
            metadata if isinstance(metadata, list) and len(metadata) == len(images) else [None] * len(images)
        )
        doc = Document(source=source, base=str(path.parent))
        for text, image, meta in zip(texts, images, metadata, strict=True):
            if image is not None:
                alt = meta.get("alt_text") if isinstance(meta, dict) else None
                doc.items.append(ImageRef(ref=str(image), alt=alt))
            elif text is not None:
                doc.items.append(str(text))
        yield doc


# ---------------------------------------------------------------------------------------------------------
# MMC4: text_list + image_info[matched_text_index]; an image goes before the sentence it was matched to
# (the OpenFlamingo convention), images ordered by matched_text_index, ties by list order
# ---------------------------------------------------------------------------------------------------------


def _read_mmc4(spec: PartSpec, image_dir: str | None) -> Iterator[Document]:
    path = Path(spec.path)
    with _open_text(path) as fh:
        for line_number, line in enumerate(fh):
            if line_number < spec.start:
                continue
            if line_number >= spec.stop:
                break
            yield _mmc4_document(line, f"{path.name}#line={line_number}", path.parent, image_dir)


def _mmc4_document(line: str, fallback_source: str, folder: Path, image_dir: str | None) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return Document(source=fallback_source, base=str(folder), error=f"invalid JSON: {err}")
    if not isinstance(record, dict):
        return Document(source=fallback_source, base=str(folder), error="a line must hold a JSON object")
    source = record.get("url") or fallback_source
    texts, infos = record.get("text_list"), record.get("image_info") or []
    if not isinstance(texts, list) or not isinstance(infos, list):
        return Document(source=source, base=str(folder), error="text_list and image_info must be lists")
    try:
        infos = sorted(infos, key=lambda info: int(info.get("matched_text_index", 0)))
    except (TypeError, ValueError, AttributeError):
        return Document(source=source, base=str(folder), error="image_info entries need matched_text_index")
    doc = Document(source=source, base=image_dir or str(folder))
    cursor = 0
    for index, text in enumerate(texts):
        while cursor < len(infos) and int(infos[cursor]["matched_text_index"]) <= index:
            doc.items.append(_mmc4_ref(infos[cursor], image_dir))
            cursor += 1
        if text is not None:
            doc.items.append(str(text))
    doc.items.extend(_mmc4_ref(info, image_dir) for info in infos[cursor:])
    return doc


def _mmc4_ref(info: dict, image_dir: str | None) -> ImageRef:
    ref = info.get("image_name") if image_dir else info.get("raw_url")
    return ImageRef(ref=str(ref or ""))


# ---------------------------------------------------------------------------------------------------------
# HTML pages
# ---------------------------------------------------------------------------------------------------------


def _read_html(page: Path) -> Document:
    raw = page.read_bytes()
    canonical, items = parse_html(raw.decode("utf-8", errors="replace"))
    return Document(source=canonical or str(page), items=items, base=str(page.parent))
