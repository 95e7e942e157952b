"""The offline ``context`` backend: captions from the document's own text, no model needed.

Each image's caption is its alt text when that says something (not a file name or "image"), else the
figure caption / sentence after it, else the sentence before it; the group caption is the document's
first text block. Text is stripped of markup, URLs and file names, and cut to a bounded length at a
sentence or word boundary. An image with no usable text at all takes the group caption plus its
position; a group with no text anywhere fails (a ``caption_failed`` drop).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence

from captioning.backends.base import CaptionOutcome, GroupRequest
from captioning.prompt import squash
from captioning.templates import CaptionTemplate

VERSION = 1
_TAG = re.compile(r"<[^>]{0,200}>")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_FILE = re.compile(r"\S+\.(?:jpe?g|png|gif|webp|bmp|tiff?|svg)\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_MEANINGLESS = {"image", "img", "photo", "picture", "figure", "thumbnail", "icon", "logo", "untitled", "null"}


def clean(text: str | None) -> str:
    """Plain readable text: markup, URLs and file names removed, whitespace collapsed."""
    text = html.unescape(_TAG.sub(" ", text or ""))
    text = _FILE.sub(" ", _URL.sub(" ", text))
    return re.sub(r"\s+", " ", text).strip(" -|:;,")


def first_sentences(text: str, max_chars: int) -> str:
    """Whole sentences up to ``max_chars``; a single longer sentence is cut at a word boundary."""
    taken = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{taken} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        taken = candidate
    return taken or squash(text, max_chars)


def usable(text: str, min_chars: int) -> bool:
    return len(text) >= min_chars and text.lower().strip(" .") not in _MEANINGLESS


class ContextCaptioner:
    """The ``context`` backend; ignores prompt templates and records its own id instead."""

    name = "context"
    model = "context"
    needs_images = False

    def __init__(self, min_chars: int = 3, max_chars: int = 200) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        settings = f"v{VERSION}:{min_chars}:{max_chars}"
        self._id = f"context@{VERSION}#{hashlib.sha256(settings.encode()).hexdigest()[:8]}"

    def template_id(self, template: CaptionTemplate) -> str:
        return self._id

    def caption_one(self, request: GroupRequest) -> CaptionOutcome:
        outcome = CaptionOutcome(group_id=request.group_id, template_id=self._id, attempts=1)
        group_caption = self._bounded(clean(request.document))
        per_image = []
        for ctx in request.context:
            for candidate in (ctx.alt, ctx.text_after, ctx.text_before):
                text = self._bounded(clean(candidate))
                if usable(text, self.min_chars):
                    per_image.append(text)
                    break
            else:
                per_image.append("")
        if not usable(group_caption, self.min_chars):
            group_caption = next((c for c in per_image if c), "")
        if not group_caption:
            outcome.error = "no usable context text for any image of the group"
            return outcome
        n = len(request.context)
        outcome.captions = [c or self._positional(group_caption, i, n) for i, c in enumerate(per_image, 1)]
        outcome.group_caption = group_caption
        return outcome

    def _positional(self, group_caption: str, i: int, n: int) -> str:
        suffix = f"(image {i} of {n})"
        return f"{squash(group_caption, self.max_chars - len(suffix) - 1)} {suffix}"

    def _bounded(self, text: str) -> str:
        return first_sentences(text, self.max_chars) if text else ""

    async def caption_groups(self, requests: Sequence[GroupRequest]) -> list[CaptionOutcome]:
        return [self.caption_one(r) for r in requests]
