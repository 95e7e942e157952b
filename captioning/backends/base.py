"""The caption backend interface and the request/outcome records every backend speaks.

A backend takes ``GroupRequest``s (a group's image bytes, per-image context, document text and the
selected template) and returns one ``CaptionOutcome`` per request, in order. A failure is an outcome
with ``error`` set, never an exception: the stage turns it into a ``caption_failed`` drop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from captioning.templates import CaptionTemplate


@dataclass(frozen=True)
class ImageContext:
    alt: str = ""
    text_before: str = ""
    text_after: str = ""


@dataclass(frozen=True)
class GroupRequest:
    group_id: str
    images: tuple[bytes, ...]
    context: tuple[ImageContext, ...]
    document: str
    template: CaptionTemplate


@dataclass
class CaptionOutcome:
    group_id: str
    template_id: str
    captions: list[str] = field(default_factory=list)
    group_caption: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # other reply fields, e.g. font_name
    error: str | None = None
    attempts: int = 0
    reply: str | None = None  # the last raw reply, kept for evaluation (count match on invalid replies)
    truncated: bool = False  # failed because replies hit max_tokens (drop reason caption_truncated)

    @property
    def ok(self) -> bool:
        return self.error is None


class CaptionBackend(Protocol):
    name: str
    model: str
    needs_images: bool  # False: requests may carry no image bytes (the context backend)

    def template_id(self, template: CaptionTemplate) -> str:
        """What the caption row records as its template (and what decides a rerun)."""
        ...

    async def caption_groups(self, requests: Sequence[GroupRequest]) -> list[CaptionOutcome]:
        """Caption every request; connections live only for this call (one event loop per call)."""
        ...


def caption_all(backend: CaptionBackend, requests: Sequence[GroupRequest]) -> list[CaptionOutcome]:
    """Synchronous entry point for stage code: the backend's own loop when it keeps one (shared by the
    parts an actor runs at once), else a loop for this call."""
    caption_sync = getattr(backend, "caption_sync", None)
    if caption_sync is not None:
        return caption_sync(requests)
    return asyncio.run(backend.caption_groups(requests))
