"""HTML page -> canonical URL and the page's text blocks and image references in source order.

``<img src>`` in source order; a lazy-loading ``data-src`` (and kin) wins over a placeholder ``src``;
``srcset`` is used only when there is no usable ``src``; a ``<picture>`` counts once (its ``<img>``, or
its first ``<source srcset>`` when the ``<img>`` has no reference). Script, style and template content is
not text.
"""

from __future__ import annotations

from html.parser import HTMLParser

from pipeline.extract.document import ImageRef

_LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-url")
_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "figure",
    "section", "article", "header", "footer", "td", "tr", "table", "blockquote", "pre", "hr", "main",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "title"}
_PLACEHOLDER_MAX_CHARS = 200  # a data: URI this short is a lazy-loading placeholder (1x1 GIF)


def _largest_srcset(srcset: str) -> str | None:
    """The candidate with the largest width (``640w``) or density (``2x``) descriptor."""
    best, best_size = None, -1.0
    for candidate in srcset.split(","):
        fields = candidate.strip().split()
        if not fields:
            continue
        size = 1.0
        if len(fields) > 1 and fields[1][-1:] in ("w", "x"):
            try:
                size = float(fields[1][:-1])
            except ValueError:
                size = 1.0
        if size > best_size:
            best, best_size = fields[0], size
    return best


def _is_placeholder(src: str | None) -> bool:
    return not src or (src.startswith("data:") and len(src) <= _PLACEHOLDER_MAX_CHARS)


def choose_reference(attrs: dict[str, str | None]) -> str | None:
    src = (attrs.get("src") or "").strip() or None
    lazy = next((attrs[a].strip() for a in _LAZY_ATTRS if (attrs.get(a) or "").strip()), None)
    if lazy and _is_placeholder(src):
        return lazy
    if src and not (_is_placeholder(src) and attrs.get("srcset")):
        return src
    srcset = attrs.get("srcset") or attrs.get("data-srcset")
    return _largest_srcset(srcset) if srcset else src


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[str | ImageRef] = []
        self.canonical: str | None = None
        self._text: list[str] = []
        self._skip_depth = 0
        self._picture: dict | None = None  # {"source": first source ref, "done": bool}

    def _flush(self) -> None:
        text = " ".join(" ".join(self._text).split())
        if text:
            self.items.append(text)
        self._text = []

    def _add_image(self, ref: str | None, alt: str | None) -> None:
        self._flush()
        self.items.append(ImageRef(ref=ref or "", alt=(alt or "").strip() or None))

    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): v for k, v in attr_list}
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        if tag == "link" and "canonical" in (attrs.get("rel") or "").lower().split() and attrs.get("href"):
            self.canonical = self.canonical or attrs["href"].strip()
        elif tag == "meta" and (attrs.get("property") or "").lower() == "og:url" and attrs.get("content"):
            self.canonical = self.canonical or attrs["content"].strip()
        elif tag == "picture":
            self._picture = {"source": None, "done": False}
        elif tag == "source" and self._picture is not None and self._picture["source"] is None:
            srcset = attrs.get("srcset") or attrs.get("data-srcset")
            self._picture["source"] = _largest_srcset(srcset) if srcset else None
        elif tag == "img":
            ref = choose_reference(attrs)
            alt = attrs.get("alt") or attrs.get("title")
            if self._picture is not None:
                if not self._picture["done"]:
                    self._add_image(ref or self._picture["source"], alt)
                    self._picture["done"] = True
            else:
                self._add_image(ref, alt)
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "picture" and self._picture is not None:
            if not self._picture["done"] and self._picture["source"]:
                self._add_image(self._picture["source"], None)
            self._picture = None
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self._text.append(data)


def parse_html(text: str) -> tuple[str | None, list[str | ImageRef]]:
    """The page's canonical URL (if any) and its items in source order."""
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    parser._flush()
    return parser.canonical, parser.items
