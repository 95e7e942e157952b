"""Group-level dedup: duplicates inside a group, and groups that duplicate other groups.

Inputs: candidate groups (rows of the GROUPS table), confirmed near-duplicate pairs, each image's
cluster id, the boilerplate images, scores. Outputs: the cleaned groups and ``drops`` rows.

- Within a group: boilerplate images go; in document order, an image that is a confirmed near
  duplicate (or the same file) of an image already kept is dropped as ``duplicate_within_group`` (kind
  ``reference``, id ``{doc_id}/{position}``, ``duplicate_of=<kept image_id>``), any other stays. The
  decision is made against the images that stay, not through chains: with A~B and B~C, B goes and C
  stays unless C is itself a near duplicate of A (a re-encode of an original can be close to both the
  original and an edit of it; the edit is not a copy of the original for that). A group left with
  fewer than ``min_group_size`` images is dropped (``group_too_small``).
  The group keeps its id (scores and labels refer to it).
- Across groups: each group is the set of its images' cluster ids. Two groups are duplicates when the
  sets overlap with Jaccard >= ``group_jaccard`` *and* share at least ``min_shared_clusters`` clusters,
  so pairs that reuse one original photo never collapse (optionally also when their mean vectors are
  within ``group_cosine`` and they are equally long). Candidates come from prefix filtering (a set-
  similarity join: two sets that reach the threshold share an element among the rarest few of each), so
  a cluster shared by thousands of groups is never expanded into all its pairs. Duplicates form
  components; the group with the highest score stays (ties: the earlier document, then the earlier
  position) and the others are dropped as ``duplicate_group`` with ``duplicate_of=<group_id>``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from manifests.drops import DropKind, DropReason, drop_row
from pipeline.dedup.clusters import components
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.vectorindex import VectorIndex


def dedup_within(
    group: dict[str, Any],
    linked: set[frozenset[str]],
    boilerplate: set[str],
    min_group_size: int,
) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """One group without boilerplate and inner duplicates, or None when too few images are left.

    ``linked`` holds the confirmed near-duplicate pairs (as frozensets of two image ids) of this group.
    """
    drops = []
    keep = [k for k, image_id in enumerate(group["image_ids"]) if image_id not in boilerplate]
    ids = group["image_ids"]
    kept: list[int] = []  # indexes into the group's columns
    for k in keep:
        # decided against the images that stay, in document order, never through a removed one: with
        # A~B and B~C, B goes as a copy of A and C stays unless C itself is a copy of A
        stays = (ids[s] for s in kept if ids[s] == ids[k] or frozenset((ids[s], ids[k])) in linked)
        original = next(stays, None)
        if original is None:
            kept.append(k)
            continue
        ref = f"{group['doc_id']}/{group['positions'][k]}"
        drops.append(
            drop_row(ref, DropKind.REFERENCE, DropReason.DUPLICATE_WITHIN_GROUP, f"duplicate_of={original}")
        )
    if len(kept) < min_group_size:
        detail = f"{len(kept)} of {len(group['image_ids'])} images left after dedup"
        drops.append(drop_row(group["group_id"], DropKind.GROUP, DropReason.GROUP_TOO_SMALL, detail))
        return None, drops
    if len(kept) == len(group["image_ids"]):
        return group, drops
    cleaned = dict(group)
    for column in ("image_ids", "positions", "context"):
        cleaned[column] = [group[column][k] for k in kept]
    return cleaned, drops


@dataclass(frozen=True)
class GroupKey:
    """What the across-group rule needs of one group."""

    group_id: str
    clusters: frozenset[str]
    score: float
    rank: tuple[int, int]  # (document order, first position): smaller is earlier
    size: int


def _prefix(clusters: frozenset[str], order: Mapping[str, tuple[int, str]], threshold: float) -> list[str]:
    """The rarest ``|x| - ceil(t |x|) + 1`` elements: any set this alike shares one of them."""
    ranked = sorted(clusters, key=order.__getitem__)
    return ranked[: len(ranked) - math.ceil(threshold * len(ranked) - 1e-9) + 1]


def jaccard_pairs(groups: list[GroupKey], cfg: DedupConfig) -> list[tuple[int, int]]:
    """Index pairs of groups whose cluster sets are alike enough (Jaccard and shared count)."""
    frequency = Counter(c for g in groups for c in g.clusters)
    order = {c: (n, c) for c, n in frequency.items()}
    by_token: dict[str, list[int]] = defaultdict(list)
    for k, g in enumerate(groups):
        for token in _prefix(g.clusters, order, cfg.group_jaccard):
            by_token[token].append(k)
    seen: set[tuple[int, int]] = set()
    out = []
    for members in by_token.values():
        for x_pos, x in enumerate(members):
            for y in members[x_pos + 1 :]:
                pair = (min(x, y), max(x, y))
                if pair in seen:
                    continue
                seen.add(pair)
                a, b = groups[pair[0]].clusters, groups[pair[1]].clusters
                shared = len(a & b)
                if shared >= cfg.min_shared_clusters and shared / len(a | b) >= cfg.group_jaccard:
                    out.append(pair)
    return out


def vector_pairs(groups: list[GroupKey], vectors: np.ndarray, min_cosine: float) -> list[tuple[int, int]]:
    """Index pairs of equally long groups whose mean image vectors (rows of ``vectors``) are close."""
    i, j, _ = VectorIndex(vectors).pairs(min_cosine)
    return [(a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True) if groups[a].size == groups[b].size]


def duplicate_groups(groups: list[GroupKey], pairs: list[tuple[int, int]]) -> dict[str, str]:
    """``{dropped group_id: kept group_id}``: one survivor per component of duplicate pairs."""
    if not pairs:
        return {}
    i, j = zip(*pairs, strict=True)
    labels = components(len(groups), np.array(i), np.array(j))
    members: dict[int, list[int]] = defaultdict(list)
    for k in sorted({*i, *j}):
        members[int(labels[k])].append(k)
    out = {}
    for component in members.values():
        best = min(component, key=lambda k: (-groups[k].score, groups[k].rank, groups[k].group_id))
        for k in component:
            if k != best:
                out[groups[k].group_id] = groups[best].group_id
    return out


def group_drop_rows(dropped: Mapping[str, str]) -> list[dict[str, str]]:
    return [
        drop_row(gid, DropKind.GROUP, DropReason.DUPLICATE_GROUP, f"duplicate_of={kept}")
        for gid, kept in sorted(dropped.items())
    ]
