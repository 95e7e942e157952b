"""Document readers: plan an input into parts and read a part -> ``Document`` items.

Formats: OBELICS parquet (``obelics.py``), MMC4 jsonl / jsonl.gz / jsonl.zip (``mmc4.py``) and folders of
HTML pages (here). Planning reads file metadata only (parquet footers, file sizes, the first MiB of a
plain jsonl), and the same input always gives the same parts whatever the number of workers. Nothing in
an input raises: an unreadable file, row group, byte range or page comes back as a ``Document`` marked
``unreadable`` (the stage records it as an ``input`` drop) and the rest is read.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError
from pipeline.extract.document import Document
from pipeline.extract.html import parse_html
from pipeline.extract.inputs import InputFile, files_of, list_files, normalise, open_binary, parent_of
from pipeline.extract.mmc4 import plan_mmc4, read_mmc4
from pipeline.extract.obelics import plan_obelics, read_obelics
from pipeline.extract.parts import PartSpec, unreadable

FORMATS = ("obelics", "mmc4", "html")


def plan_parts(
    input: str | Path, fmt: str, docs_per_part: int, files: list[InputFile] | None = None
) -> list[PartSpec]:
    """Cut the input's ``fmt`` files into parts of about ``docs_per_part`` documents, in input order.
    ``files``: the input's listing when the caller has it already."""
    uri = normalise(str(input))
    listing = list_files(uri) if files is None else files
    # one file given by name is read as the format asked, whatever its suffix
    chosen = listing if [f.uri for f in listing] == [uri] else files_of(listing, fmt)
    specs: list[PartSpec] = []
    if fmt == "html":
        pages = [f.uri for f in chosen]
        for start in range(0, len(pages), docs_per_part):
            specs.append(PartSpec("html", uri, pages=tuple(pages[start : start + docs_per_part])))
    else:
        planner = plan_obelics if fmt == "obelics" else plan_mmc4
        for file in chosen:
            specs.extend(planner(file, docs_per_part))
    if not specs:
        raise UserError(f"no {fmt} documents found in {uri}")
    return specs


def read_part(spec: PartSpec, mmc4_image_dir: str | None = None) -> list[Document]:
    if spec.format == "obelics":
        if spec.error:
            return [unreadable(spec.path, "", spec.error)]
        return list(read_obelics(spec))
    if spec.format == "mmc4":
        return list(read_mmc4(spec, mmc4_image_dir))
    return [_read_html(page) for page in spec.pages]


def _read_html(page: str) -> Document:
    try:
        with open_binary(page) as fh:
            raw = fh.read()
    except OSError as err:
        return unreadable(page, "", err)
    canonical, items = parse_html(raw.decode("utf-8", errors="replace"))
    return Document(source=canonical or page, items=items, base=parent_of(page))


__all__ = ["FORMATS", "PartSpec", "plan_parts", "read_part"]
