"""Scores of one template's captions over an evaluation sample (pure functions over outcomes).

- valid: share of groups whose reply passed validation;
- count_match: share of groups whose reply held exactly one caption per image (even if invalid otherwise);
- caption length statistics (characters) over valid captions;
- distinct: within a group, distinct captions / images (1.0: no two images got the same caption);
- shared: the template's shared field (font name, subject) found in every caption of the group, or, for
  templates without one, at least one content word common to all captions;
- grounding: caption i retrieves image i among its group's images (CLIP), only when weights are given.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from captioning.backends.base import CaptionOutcome
from captioning.templates import CaptionTemplate

_WORD = re.compile(r"[a-z][a-z'-]{2,}")
STOPWORDS = frozenset(
    "the and with from that this these those into onto over under image images photo picture shows showing "
    "shown same each other their there which while where what about above below between its are was were "
    "has have been being for not but all any one two three four five six seven eight nine ten".split()
)

Grounder = Callable[[Sequence[bytes], Sequence[str]], float]


@dataclass
class TemplateScore:
    template: str
    groups: int
    valid: float
    count_match: float
    mean_chars: float | None
    min_chars: int | None
    max_chars: int | None
    distinct: float | None
    shared: float | None
    grounding: float | None
    grounding_note: str

    def as_dict(self) -> dict:
        return asdict(self)


def content_terms(text: str) -> set[str]:
    return {w.strip("'-") for w in _WORD.findall(text.lower())} - STOPWORDS


def shared_terms(captions: Sequence[str]) -> set[str]:
    """Content words that every caption of the group uses."""
    if not captions:
        return set()
    common = content_terms(captions[0])
    for caption in captions[1:]:
        common &= content_terms(caption)
    return common


def reply_count(reply: str | None) -> int | None:
    try:
        data = json.loads(reply or "")
    except json.JSONDecodeError:
        return None
    captions = data.get("captions") if isinstance(data, dict) else None
    return len(captions) if isinstance(captions, list) else None


def distinct_share(captions: Sequence[str]) -> float:
    return len({" ".join(c.lower().split()) for c in captions}) / len(captions)


def shared_score(outcome: CaptionOutcome, template: CaptionTemplate) -> float:
    value = outcome.fields.get(template.shared_field or "", "").strip().lower()
    if value:
        return sum(value in c.lower() for c in outcome.captions) / len(outcome.captions)
    return 1.0 if shared_terms(outcome.captions) else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def score_template(
    template: CaptionTemplate,
    outcomes: Sequence[CaptionOutcome],
    sizes: Sequence[int],
    images: Sequence[Sequence[bytes]] | None = None,
    grounder: Grounder | None = None,
) -> TemplateScore:
    """Score ``outcomes`` (one per sampled group; ``sizes`` gives each group's image count)."""
    valid = [o for o in outcomes if o.ok]
    counts_ok = [o.ok or reply_count(o.reply) == n for o, n in zip(outcomes, sizes, strict=True)]
    lengths = [len(c) for o in valid for c in o.captions]
    grounding, note = None, "skipped: no CLIP weights configured (set caption.clip_weights)"
    if grounder is not None and images is not None:
        scores = [grounder(imgs, o.captions) for o, imgs in zip(outcomes, images, strict=True) if o.ok]
        grounding = _mean(scores)
        note = f"CLIP retrieval of image i by caption i over {len(scores)} valid groups"
    total = len(outcomes)
    return TemplateScore(
        template=template.template_id,
        groups=total,
        valid=round(len(valid) / total, 4) if total else 0.0,
        count_match=round(sum(counts_ok) / total, 4) if total else 0.0,
        mean_chars=_mean(lengths),
        min_chars=min(lengths) if lengths else None,
        max_chars=max(lengths) if lengths else None,
        distinct=_mean([distinct_share(o.captions) for o in valid]),
        shared=_mean([shared_score(o, template) for o in valid]),
        grounding=grounding,
        grounding_note=note,
    )
