"""Scores of one template's captions over an evaluation sample (pure functions over outcomes).

- valid, count_match: shares of groups with a valid reply / one caption per image (with guided
  decoding both are near 1.0 for any template: they catch broken templates, they do not rank good ones);
- caption length statistics (characters) over valid captions, and distinct (captions per image that
  differ within a group);
- identity: share of captions naming the reply's shared identity (``captioning.identity``), per group;
  a template without a shared field has none;
- grounding: caption i retrieves image i among its group's images (CLIP, when weights are configured),
  chance-corrected per group: (hits - 1/n) / (1 - 1/n), so 0 is guessing and 1 is perfect;
- judge: the pairwise judge's win rate against the other templates (``captioning.judge``).
Every mean comes with a 95% bootstrap confidence interval over groups (``bootstrap_ci``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from captioning.backends.base import CaptionOutcome
from captioning.identity import content_terms, identity_share
from captioning.templates import CaptionTemplate

Grounder = Callable[[Sequence[bytes], Sequence[str]], float]
BOOTSTRAP_SAMPLES = 2000


def bootstrap_ci(values: Sequence[float], seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (resampling groups)."""
    if not values:
        return None
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(BOOTSTRAP_SAMPLES, len(data)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return round(float(np.percentile(means, tail)), 4), round(float(np.percentile(means, 100 - tail)), 4)


@dataclass
class Measure:
    """A mean over groups with its confidence interval."""

    mean: float | None
    ci: tuple[float, float] | None
    groups: int

    @classmethod
    def of(cls, values: Sequence[float], seed: int = 0) -> Measure:
        mean = round(statistics.fmean(values), 4) if values else None
        return cls(mean, bootstrap_ci(values, seed), len(values))

    def __str__(self) -> str:
        if self.mean is None:
            return "-"
        return f"{self.mean:.3f} [{self.ci[0]:.3f}, {self.ci[1]:.3f}]" if self.ci else f"{self.mean:.3f}"


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
    identity: Measure
    grounding: Measure | None
    grounding_note: str
    judge: Measure | None = None  # filled in by the eval once every template is captioned
    judge_note: str = "skipped"
    votes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def shared_terms(captions: Sequence[str]) -> set[str]:
    """Content words that every caption of the group uses (shown on the eval page, not scored)."""
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


def chance_corrected(hits: float, n: int) -> float:
    """Retrieval accuracy rescaled so that guessing among n images scores 0 and perfect scores 1."""
    return (hits - 1 / n) / (1 - 1 / n) if n > 1 else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def score_template(
    template: CaptionTemplate,
    outcomes: Sequence[CaptionOutcome],
    sizes: Sequence[int],
    images: Sequence[Sequence[bytes]] | None = None,
    grounder: Grounder | None = None,
    seed: int = 0,
) -> TemplateScore:
    """Score ``outcomes`` (one per sampled group; ``sizes`` gives each group's image count)."""
    valid = [o for o in outcomes if o.ok]
    counts_ok = [o.ok or reply_count(o.reply) == n for o, n in zip(outcomes, sizes, strict=True)]
    lengths = [len(c) for o in valid for c in o.captions]
    grounding, note = None, "skipped: no CLIP weights configured (set caption.clip_weights)"
    if grounder is not None and images is not None:
        values = [
            chance_corrected(grounder(imgs, o.captions), len(imgs))
            for o, imgs in zip(outcomes, images, strict=True)
            if o.ok and len(imgs) > 1
        ]
        grounding = Measure.of(values, seed)
        note = f"CLIP retrieval of image i by caption i, chance-corrected, over {len(values)} valid groups"
    shares = [identity_share(template, o.captions, o.fields) for o in valid]
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
        identity=Measure.of([s for s in shares if s is not None], seed),
        grounding=grounding,
        grounding_note=note,
    )
