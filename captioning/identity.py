"""Does every caption of a group name the group's shared identity (the reply's ``shared_field``)?

Inputs: a template (its ``shared_field``, e.g. ``font_name`` or ``subject``) and a reply's captions and
fields. A caption names the identity when it holds every content word of the identity's value (case
and word order aside), so "glyph Q of DejaVu Serif" names "DejaVu Serif" and "the serif face" does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from captioning.templates import CaptionTemplate

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]{2,}")
STOPWORDS = frozenset(
    "the and with from that this these those into onto over under image images photo picture shows showing "
    "shown same each other their there which while where what about above below between its are was were "
    "has have been being for not but all any one two three four five six seven eight nine ten".split()
)


def content_terms(text: str) -> set[str]:
    return {w.strip("'-") for w in _WORD.findall(text.lower())} - STOPWORDS


def names(caption: str, value: str) -> bool:
    terms = content_terms(value)
    text = caption.lower()
    return all(t in text for t in terms) if terms else value.strip().lower() in text


def identity_value(template: CaptionTemplate, fields: Mapping[str, str]) -> str:
    return (fields.get(template.shared_field or "") or "").strip()


def identity_consistent(
    template: CaptionTemplate, captions: Sequence[str], fields: Mapping[str, str]
) -> bool | None:
    """True when every caption names the identity, False when one does not, None without an identity."""
    value = identity_value(template, fields)
    if not value or not captions:
        return None
    return all(names(c, value) for c in captions)


def identity_share(
    template: CaptionTemplate, captions: Sequence[str], fields: Mapping[str, str]
) -> float | None:
    """Share of captions naming the identity (None when the template or reply has none)."""
    value = identity_value(template, fields)
    if not value or not captions:
        return None
    return sum(names(c, value) for c in captions) / len(captions)
