"""Galleries of groups: a seeded sample of kept groups with their captions, of groups the classifier
rejected (``low_score``), and of duplicate groups beside the group that stayed.

Inputs: the current groups (``reading.kept_groups``), ``caption/captions``, ``classify/{scores,drops}``,
``dedup/drops`` and ``extract/groups``. Output: ``GroupCard`` lists; memory is the samples only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from manifests.drops import DropReason
from manifests.storage import AnyPath
from pipeline.report.categories import CategoryResolver
from pipeline.report.config import ReportConfig
from pipeline.report.reading import Reservoir, kept_groups, rows_by_id, stream
from pipeline.report.text import clip

SCORE = re.compile(r"score=([0-9.eE+-]+)")


@dataclass
class GroupCard:
    group_id: str
    source: str = ""
    image_ids: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)  # one per image, or empty
    group_caption: str = ""
    template: str = ""
    category: str = ""
    category_source: str = ""
    score: float | None = None
    detail: str = ""  # why it was dropped, for rejected and duplicate groups
    found: bool = True  # False: the group is not in the groups table any more


@dataclass
class DuplicatePair:
    duplicate: GroupCard
    kept: GroupCard


@dataclass
class Galleries:
    kept: list[GroupCard] = field(default_factory=list)
    kept_total: int = 0
    rejected: list[GroupCard] = field(default_factory=list)
    rejected_total: int = 0
    duplicates: list[DuplicatePair] = field(default_factory=list)
    duplicates_total: int = 0


def _card(group_id: str, row: dict[str, Any] | None, text_chars: int) -> GroupCard:
    if row is None:
        return GroupCard(group_id, found=False)
    return GroupCard(group_id, source=clip(row["source"], text_chars), image_ids=list(row["image_ids"]))


def kept_gallery(
    run: AnyPath, cfg: ReportConfig, categories: CategoryResolver
) -> tuple[list[GroupCard], int]:
    sample: Reservoir[dict[str, Any]] = Reservoir(cfg.gallery_groups, cfg.seed, "kept")
    for row in kept_groups(run, ["source", "image_ids"]):
        sample.add(row)
    rows = sorted(sample.items, key=lambda r: r["group_id"])
    ids = [r["group_id"] for r in rows]
    columns = ["captions", "group_caption", "template"]
    captions = rows_by_id(run, "caption", "captions", "group_id", ids, columns)
    scores = rows_by_id(run, "classify", "scores", "group_id", ids, ["score"])
    cards = []
    for row in rows:
        card = _card(row["group_id"], row, cfg.text_chars)
        caption = captions.get(card.group_id)
        if caption:
            card.captions = [clip(c or "", cfg.text_chars) for c in caption["captions"]]
            card.group_caption = clip(caption["group_caption"] or "", cfg.text_chars)
            card.template = caption["template"]
        if card.group_id in scores:
            card.score = scores[card.group_id]["score"]
        card.category, card.category_source = categories.of(card.group_id)
        cards.append(card)
    return cards, sample.seen


def _drop_sample(run: AnyPath, stage: str, reason: DropReason, size: int, seed: int) -> Reservoir[dict]:
    sample: Reservoir[dict[str, Any]] = Reservoir(size, seed, f"gallery:{stage}:{reason}")
    for row in stream(run, stage, "drops", ["id", "reason", "detail"]):
        if row["reason"] == str(reason):
            sample.add(row)
    sample.items.sort(key=lambda r: r["id"])
    return sample


def rejected_gallery(run: AnyPath, cfg: ReportConfig) -> tuple[list[GroupCard], int]:
    sample = _drop_sample(run, "classify", DropReason.LOW_SCORE, cfg.rejected_groups, cfg.seed)
    groups = rows_by_id(
        run, "extract", "groups", "group_id", [r["id"] for r in sample.items], ["source", "image_ids"]
    )
    cards = []
    for row in sample.items:
        card = _card(row["id"], groups.get(row["id"]), cfg.text_chars)
        card.detail = row["detail"]
        match = SCORE.search(row["detail"] or "")
        card.score = float(match.group(1)) if match else None
        cards.append(card)
    return cards, sample.seen


def duplicate_gallery(run: AnyPath, cfg: ReportConfig) -> tuple[list[DuplicatePair], int]:
    sample = _drop_sample(run, "dedup", DropReason.DUPLICATE_GROUP, cfg.duplicate_groups, cfg.seed)
    kept_of = {r["id"]: (r["detail"] or "").removeprefix("duplicate_of=").strip() for r in sample.items}
    groups = rows_by_id(
        run, "extract", "groups", "group_id", [*kept_of, *kept_of.values()], ["source", "image_ids"]
    )
    pairs = []
    for row in sample.items:
        duplicate = _card(row["id"], groups.get(row["id"]), cfg.text_chars)
        duplicate.detail = row["detail"]
        kept_id = kept_of[row["id"]]
        pairs.append(DuplicatePair(duplicate, _card(kept_id, groups.get(kept_id), cfg.text_chars)))
    return pairs, sample.seen


def galleries(run: AnyPath, cfg: ReportConfig, categories: CategoryResolver) -> Galleries:
    result = Galleries()
    result.kept, result.kept_total = kept_gallery(run, cfg, categories)
    result.rejected, result.rejected_total = rejected_gallery(run, cfg)
    result.duplicates, result.duplicates_total = duplicate_gallery(run, cfg)
    return result
