"""A document as the readers give it: text blocks and image references in the document's order."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImageRef:
    ref: str  # the reference as written (URL, path, data: URI)
    alt: str | None = None
    fallback: str | None = None  # tried when ``ref`` is a local file that is missing (MMC4 raw_url)


@dataclass
class Document:
    source: str  # the document's URL, or its path/row when it has none
    items: list[str | ImageRef] = field(default_factory=list)  # text blocks and references, in order
    base: str = ""  # what relative references resolve against: a folder path or the page URL
    error: str | None = None  # set when the document is malformed; items are then empty
    root: str | None = None  # local references must lie under it; None: the stage's local root
    rejected: list[str] = field(default_factory=list)  # entries the reader could not place (the reason)
    unreadable: bool = False  # not a document: a piece of input (file, row group, line range) unreadable
