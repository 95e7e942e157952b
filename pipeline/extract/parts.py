"""A part of the input: which file and which slice of it one worker reads, small enough to pickle and to
cache as JSON (``RUN/extract/_plan.json``) so that a resumed run does not plan again."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.extract.document import Document


@dataclass(frozen=True)
class PartSpec:
    format: str
    path: str  # the input file (parquet, jsonl, zip), a local path or a URL; for HTML the input
    start: int = 0  # rows (parquet) or bytes (plain jsonl) from here ...
    stop: int = 0  # ... to here, exclusive; -1: to the end (compressed jsonl, read whole)
    member: str = ""  # the jsonl inside a zip
    pages: tuple[str, ...] = ()  # HTML page files of this part
    error: str = ""  # the file could not be planned (unreadable footer, bad zip): one drop, no documents

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PartSpec:
        return cls(**{**data, "pages": tuple(data.get("pages", ()))})


def unreadable(uri: str, where: str, err: BaseException | str) -> Document:
    """The record of a piece of input that could not be read: the stage turns it into an ``input`` drop."""
    message = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return Document(source=uri, error=f"{where}: {message}" if where else message, unreadable=True)
