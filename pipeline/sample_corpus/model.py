"""The in-memory corpus: image references, documents as ordered blocks, and the truth recorded while
documents are built.

Inputs: calls from the document plans. Outputs: a `Corpus` that the writers turn into files. Truth is
written by construction: `DocBuilder.run` knows which positions it placed, so a group's positions are
recorded when its images are added, never reconstructed afterwards.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Literal

from pipeline.sample_corpus import texts

URL_ROOT = "https://sample.gdt/"
MAX_GROUP = 8  # extract's default max_group_size; longer runs become ceil(L/8) windows

Broken = Literal["missing", "truncated", "not_image", "svg"]
HtmlStyle = Literal["plain", "picture", "lazy", "srcset"]
Label = Literal["good", "bad"]


@dataclass(frozen=True)
class Ref:
    """One image reference as the documents write it."""

    name: str  # file name under images/, or a name for a data: URI
    data: bytes | None  # None for a missing file
    mime: str
    alt: str = ""
    inline: bool = False  # written as a data: URI instead of a path
    broken: Broken | None = None
    html: HtmlStyle = "plain"
    small_name: str | None = None  # the smaller srcset candidate, for html == "srcset"
    width: int = 0

    @property
    def path(self) -> str:
        return f"images/{self.name}"

    def uri(self) -> str:
        """The reference relative to OUT: a path under images/ or a data: URI."""
        if self.inline:
            assert self.data is not None
            return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"
        return self.path

    def styled(self, html: HtmlStyle, small_name: str | None = None) -> Ref:
        return Ref(
            self.name, self.data, self.mime, self.alt, self.inline, self.broken, html, small_name, self.width
        )

    def with_alt(self, alt: str) -> Ref:
        return Ref(
            self.name,
            self.data,
            self.mime,
            alt,
            self.inline,
            self.broken,
            self.html,
            self.small_name,
            self.width,
        )


@dataclass
class Group:
    positions: list[int]
    label: Label
    category: str


@dataclass
class Doc:
    slug: str
    title: str
    blocks: list[str | Ref] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    @property
    def url(self) -> str:
        return URL_ROOT + self.slug

    @property
    def refs(self) -> list[Ref]:
        return [b for b in self.blocks if isinstance(b, Ref)]


class DocBuilder:
    """Appends text and images to one document, numbering image references as extract does."""

    def __init__(self, corpus: Corpus, doc: Doc, rng: random.Random) -> None:
        self.corpus, self.doc, self.rng = corpus, doc, rng
        self.n_refs = 0

    def text(self, text: str) -> DocBuilder:
        self.doc.blocks.append(text)
        return self

    def long_text(self) -> DocBuilder:
        return self.text(texts.paragraph(self.rng))

    def image(self, ref: Ref) -> int:
        self.doc.blocks.append(ref)
        position = self.n_refs
        self.n_refs += 1
        if ref.broken:
            self.corpus.broken.append((self.doc.url, position, ref.broken))
        return position

    def header(self) -> DocBuilder:
        """The site logo, then a long introduction: the logo never joins a group."""
        assert self.corpus.logo_ref is not None
        self.image(self.corpus.logo_ref)
        return self.long_text()

    def run(
        self, refs: list[Ref], label: Label, category: str, captions: list[str] | None = None
    ) -> list[list[int]]:
        """Images with at most a short caption between neighbours; broken refs are placed but skipped.

        Returns the positions of each candidate group the run forms (one, or several windows when it
        holds more than MAX_GROUP kept images).
        """
        kept: list[int] = []
        for i, ref in enumerate(refs):
            if i and captions and captions[i]:
                self.text(captions[i])
            position = self.image(ref)
            if not ref.broken:
                kept.append(position)
        assert len(kept) >= 2, f"{self.doc.slug}: a group needs two kept images"
        n_windows = -(-len(kept) // MAX_GROUP)
        base, extra = divmod(len(kept), n_windows)
        windows, start = [], 0
        for w in range(n_windows):
            size = base + (1 if w < extra else 0)
            windows.append(kept[start : start + size])
            start += size
        for positions in windows:
            self.doc.groups.append(Group(positions, label, category))
        return windows


@dataclass
class Corpus:
    """Every document and image of the corpus, plus the truth gathered while building them."""

    seed: int
    files: dict[str, bytes] = field(default_factory=dict)
    docs: list[Doc] = field(default_factory=list)
    near_duplicates: list[tuple[str, str]] = field(default_factory=list)
    duplicate_groups: list[tuple[tuple[str, list[int]], tuple[str, list[int]]]] = field(default_factory=list)
    broken: list[tuple[str, int, str]] = field(default_factory=list)
    shared_originals: list[str] = field(default_factory=list)
    edit_pairs: list[tuple[str, str, str]] = field(default_factory=list)  # (original, edited, edit kind)
    logo_ref: Ref | None = None

    def rng(self, key: str) -> random.Random:
        """A generator of its own per key, so that one plan's draws never shift another's."""
        return random.Random(f"{self.seed}:{key}")

    def add_file(self, name: str, data: bytes, mime: str, alt: str = "", width: int = 0) -> Ref:
        """Store a file under images/ (the same name must always hold the same bytes)."""
        if self.files.setdefault(name, data) != data:
            raise ValueError(f"two different images named {name}")
        return Ref(name, data, mime, alt, width=width)

    def document(self, slug: str, title: str) -> DocBuilder:
        if any(d.slug == slug for d in self.docs):
            raise ValueError(f"duplicate document slug {slug}")
        doc = Doc(slug, title)
        self.docs.append(doc)
        return DocBuilder(self, doc, self.rng(f"doc:{slug}"))

    def near_duplicate(self, original: Ref, copy: Ref) -> None:
        self.near_duplicates.append((original.path, copy.path))

    def edit_pair(self, original: Ref, edited: Ref, kind: str) -> None:
        """A before/after pair: two pictures dedup must keep apart."""
        self.edit_pairs.append((original.path, edited.path, kind))

    def duplicate_group(
        self, a: DocBuilder, a_positions: list[int], b: DocBuilder, b_positions: list[int]
    ) -> None:
        self.duplicate_groups.append(((a.doc.url, a_positions), (b.doc.url, b_positions)))
