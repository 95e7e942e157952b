"""Build a group's chat request (messages + JSON-schema response format) and validate the reply.

The request carries every image of the group in order, each announced by "Image i:", so the model
can tie captions to images. ``parse_reply`` enforces the contract: a JSON object with exactly one
non-empty caption per image, every caption and the group caption within the template's length bounds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from captioning.backends.base import GroupRequest, ImageContext
from captioning.images import to_data_uri
from captioning.templates import CaptionTemplate

CONTEXT_FIELD_CHARS = 240  # per alt/before/after field: enough for a sentence, keeps prompts short
DOCUMENT_CHARS = 600
_SPACE = re.compile(r"\s+")


class InvalidReply(ValueError):
    """The server answered, but not with the captions asked for."""


def squash(text: str | None, limit: int) -> str:
    """Collapse whitespace and cut at a word boundary to at most ``limit`` characters."""
    text = _SPACE.sub(" ", text or "").strip()
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else text[:limit]
    return cut.rstrip(" ,;:") or text[:limit]


def format_context(context: Sequence[ImageContext]) -> str:
    lines = []
    for i, ctx in enumerate(context, start=1):
        parts = [
            f"{label}: {squash(value, CONTEXT_FIELD_CHARS)}"
            for label, value in (("alt", ctx.alt), ("before", ctx.text_before), ("after", ctx.text_after))
            if value and value.strip()
        ]
        lines.append(f"Image {i}: " + ("; ".join(parts) if parts else "(no text)"))
    return "\n".join(lines)


def build_messages(request: GroupRequest, max_side: int) -> list[dict[str, Any]]:
    template = request.template
    before, after = template.render(
        n=len(request.images),
        context=format_context(request.context),
        document=squash(request.document, DOCUMENT_CHARS) or "(none)",
    )
    content: list[dict[str, Any]] = []
    if before.strip():
        content.append({"type": "text", "text": before.strip()})
    for i, data in enumerate(request.images, start=1):
        content.append({"type": "text", "text": f"Image {i}:"})
        content.append({"type": "image_url", "image_url": {"url": to_data_uri(data, max_side)}})
    # the schema enforces these bounds; saying them lets the model plan its sentences instead of
    # being cut mid-word by the grammar
    limits = (
        f"Each caption and the group caption: {template.min_chars} to {template.max_chars} characters, "
        "whole sentences."
    )
    content.append({"type": "text", "text": f"{after.strip()}\n{limits}".strip()})
    return [{"role": "system", "content": template.system.strip()}, {"role": "user", "content": content}]


def response_format(template: CaptionTemplate, n: int) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": f"{template.name}_captions",
            "schema": template.schema_for(n),
            "strict": True,
        },
    }


def parse_reply(
    content: str | None, n: int, template: CaptionTemplate
) -> tuple[list[str], str, dict[str, str]]:
    """(captions, group caption, other string fields) from a reply, or ``InvalidReply`` saying why."""
    if not content:
        raise InvalidReply("empty reply")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as err:
        raise InvalidReply(f"reply is not JSON ({err.msg} at {err.pos})") from err
    if not isinstance(data, dict):
        raise InvalidReply("reply is not a JSON object")
    captions = data.get("captions")
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise InvalidReply("reply has no list of string captions")
    if len(captions) != n:
        raise InvalidReply(f"reply has {len(captions)} captions for {n} images")
    group_caption = data.get("group_caption")
    if not isinstance(group_caption, str):
        raise InvalidReply("reply has no group_caption string")
    captions = [_SPACE.sub(" ", c).strip() for c in captions]
    group_caption = _SPACE.sub(" ", group_caption).strip()
    for i, text in enumerate([*captions, group_caption]):
        which = f"caption {i + 1}" if i < n else "group caption"
        if not text:
            raise InvalidReply(f"{which} is empty")
        if not template.min_chars <= len(text) <= template.max_chars:
            raise InvalidReply(
                f"{which} has {len(text)} characters; bounds are {template.min_chars}..{template.max_chars}"
            )
    fields = {
        k: v.strip() for k, v in data.items() if k not in ("captions", "group_caption") and isinstance(v, str)
    }
    return captions, group_caption, fields
