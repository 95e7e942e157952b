"""Page furniture: sentences a site repeats across many of its documents (footers, banners, filler).

Inputs: the run's ``extract/documents`` (``source`` and ``texts``). Output: the set of 64-bit keys of
(site, sentence) pairs that occur in at least ``min_docs`` documents and ``min_share`` of the site's
documents; ``strip`` removes those sentences from a text. A sentence repeated on many pages of one site
says nothing about one page's pictures, so it is not evidence of a group's kind. Memory: 8 bytes per
distinct (site, sentence) while counting, read one file at a time.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from manifests.storage import read_parquet
from manifests.tables import part_files

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_SPACE = re.compile(r"\s+")


def site_of(source: str) -> str:
    """The host of a URL, else the folder of a path: pages of one site share furniture."""
    host = urlsplit(source).netloc
    return host or str(Path(source).parent)


def sentences(text: str | None) -> list[str]:
    return [s for s in (_SPACE.sub(" ", p).strip() for p in _SENTENCE.split(text or "")) if s]


def key(site: str, sentence: str) -> int:
    digest = hashlib.blake2b(f"{site}\x00{sentence.lower()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def repeated_sentences(run: Path, min_docs: int = 3, min_share: float = 0.05) -> frozenset[int]:
    """Keys of the (site, sentence) pairs that count as furniture."""
    per_sentence: Counter[int] = Counter()
    per_site: Counter[str] = Counter()
    sites: dict[int, str] = {}
    for path in part_files(run, "extract", "documents"):
        table = read_parquet(path, columns=["source", "texts"])
        for source, texts in zip(
            table.column("source").to_pylist(), table.column("texts").to_pylist(), strict=True
        ):
            site = site_of(source)
            per_site[site] += 1
            seen = {key(site, s) for t in texts or [] for s in sentences(t)}
            for k in seen:
                sites[k] = site
            per_sentence.update(seen)
    return frozenset(k for k, n in per_sentence.items() if n >= max(min_docs, min_share * per_site[sites[k]]))


def strip(text: str | None, site: str, furniture: frozenset[int]) -> str:
    """``text`` without the site's furniture sentences."""
    return " ".join(s for s in sentences(text) if key(site, s) not in furniture)
