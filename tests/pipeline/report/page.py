"""Reading a written report page in tests: the text under each keyed element, and every image source."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

SECTIONS = (
    "funnel",
    "drops",
    "distributions",
    "classifier",
    "galleries",
    "dedup",
    "shards",
    "config",
    "manifests",
)
VOID = {"img", "meta", "br", "input", "link", "hr", "rect", "area", "source", "wbr"}


class _Keyed(HTMLParser):
    """Text under every element that has an ``id``, ``data-step`` or ``data-stage``, and every img src."""

    def __init__(self):
        super().__init__()
        self.text: dict[str, str] = {}
        self.stack: list[str | None] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.handle_data(" ")  # cells and tags separate words, as a browser's layout does
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag in VOID:
            return
        key = attrs.get("id") or attrs.get("data-step") or attrs.get("data-stage")
        self.stack.append(key)
        if key:
            self.text.setdefault(key, "")

    def handle_startendtag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag):
        self.handle_data(" ")
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        for key in self.stack:
            if key:
                self.text[key] += data


def parse(index: Path) -> _Keyed:
    parser = _Keyed()
    parser.feed(index.read_text())
    return parser
