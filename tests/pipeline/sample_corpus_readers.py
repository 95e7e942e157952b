"""Independent readers of the sample corpus's three formats and the extract rules restated from the brief.

The sample-corpus tests check the corpus with these, not with the project's extract code, so a mistake in
the corpus cannot hide behind the same mistake in ``extract``.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

MIN_SIDE, MAX_ASPECT, MAX_GAP, MIN_GROUP, MAX_GROUP = 150, 2.0, 1000, 2, 8

# ---------------------------------------------------------------------------------------------------------
# Independent readers of the three formats: each gives {url: [("text", str) | ("image", bytes | None)]}
# ---------------------------------------------------------------------------------------------------------


def load_ref(ref: str, folder: Path) -> bytes | None:
    if ref.startswith("data:"):
        return base64.b64decode(ref.split(",", 1)[1])
    path = (folder / ref).resolve()
    return path.read_bytes() if path.is_file() else None


def read_obelics(corpus: Path) -> dict[str, list]:
    out = {}
    for row in pq.read_table(corpus / "documents.parquet").to_pylist():
        assert len(row["texts"]) == len(row["images"])
        assert all((t is None) != (i is None) for t, i in zip(row["texts"], row["images"], strict=True))
        meta = json.loads(row["metadata"])
        assert len(meta) == len(row["images"])
        url = json.loads(row["general_metadata"])["url"]
        out[url] = [
            ("text", t) if t is not None else ("image", load_ref(i, corpus))
            for t, i in zip(row["texts"], row["images"], strict=True)
        ]
    return out


def read_mmc4(corpus: Path) -> dict[str, list]:
    out = {}
    with gzip.open(corpus / "documents.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            # a stable sort: ties keep list order
            infos = sorted(rec["image_info"], key=lambda i: i["matched_text_index"])
            assert len(rec["similarity_matrix"]) == len(infos)
            blocks: list = []
            for index, text in enumerate(rec["text_list"]):
                matched = [i for i in infos if i["matched_text_index"] == index]
                blocks += [("image", load_ref(i["raw_url"], corpus)) for i in matched]
                blocks.append(("text", text))
            out[rec["url"]] = blocks
    return out


class Page(HTMLParser):
    """Just enough HTML: canonical link, <p> text, and <img> with the variants the corpus writes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.url, self.blocks, self.in_p, self.picture_source = None, [], False, None
        self.variants: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attr_list: list) -> None:
        attrs = dict(attr_list)
        if tag == "link" and attrs.get("rel") == "canonical":
            self.url = attrs["href"]
        elif tag == "p":
            self.in_p = True
            self.blocks.append(["text", ""])
        elif tag == "source":
            self.picture_source = attrs["srcset"]
        elif tag == "img":
            ref = attrs.get("data-src") or attrs["src"]
            self.blocks.append(["image", ref])
            if "data-src" in attrs:
                self.variants.append(("lazy", attrs))
            elif "srcset" in attrs:
                self.variants.append(("srcset", attrs))
            elif self.picture_source is not None:
                self.variants.append(("picture", {**attrs, "source": self.picture_source}))

    def handle_endtag(self, tag: str) -> None:
        self.in_p = self.in_p and tag != "p"
        if tag == "picture":
            self.picture_source = None

    def handle_data(self, data: str) -> None:
        if self.in_p:
            self.blocks[-1][1] += data


def parse_pages(corpus: Path) -> list[Page]:
    pages = []
    for page in sorted((corpus / "html").glob("*.html")):
        parser = Page()
        parser.feed(page.read_text(encoding="utf-8"))
        pages.append(parser)
    return pages


def read_html(corpus: Path) -> dict[str, list]:
    folder = corpus / "html"
    return {
        p.url: [("text", v) if kind == "text" else ("image", load_ref(v, folder)) for kind, v in p.blocks]
        for p in parse_pages(corpus)
    }


# ---------------------------------------------------------------------------------------------------------
# The extract rules, restated from the brief, to check the truth against the files themselves
# ---------------------------------------------------------------------------------------------------------


def kept(data: bytes | None) -> bool:
    if data is None:
        return False
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:
        return False
    w, h = img.size
    return min(w, h) >= MIN_SIDE and max(w, h) <= MAX_ASPECT * min(w, h)


def candidate_groups(blocks: list) -> list[list[int]]:
    runs: list[list[int]] = []
    gap, position, started = 0, 0, False
    for kind, value in blocks:
        if kind == "text":
            gap += len(value)
            continue
        if kept(value):
            if started and gap <= MAX_GAP:
                runs[-1].append(position)
            else:
                runs.append([position])
            started, gap = True, 0
        position += 1
    groups = []
    for run in runs:
        if len(run) < MIN_GROUP:
            continue
        count = math.ceil(len(run) / MAX_GROUP)
        base, extra = divmod(len(run), count)
        start = 0
        for i in range(count):
            size = base + (i < extra)
            groups.append(run[start : start + size])
            start += size
    return groups
