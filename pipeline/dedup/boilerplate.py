"""Boilerplate: page furniture (logos, icons, buttons, banners) that many documents repeat.

Inputs: every document's ordered image ids, the near-duplicate cluster of each image, the size of each
cluster's representative image and its pixel statistics. Outputs: the boilerplate clusters, each with
the facts that decided it.

The rule. Frequency alone is not enough (a manual may reuse one example photo as the "original" of a
hundred edit pages, and those groups are content), so a cluster is boilerplate when it is
- **frequent**: its images appear in at least ``boilerplate_min_documents`` documents, and
- shows at least ``boilerplate_min_traits`` furniture **traits**:
  - ``icon_like``: the longer side is at most ``icon_max_side`` px, or it is a banner/rule at least
    ``icon_min_aspect`` times longer than high (or the reverse);
  - ``flat``: little visual content: gray-level entropy below ``flat_max_entropy`` bits (logos and icons
    4-5.4, glyphs under 1, photos mostly above 5.5: colour counts were tried and rejected, since a
    grayscale photo uses as few colours as a logo);
  - ``fixed_position``: at least ``fixed_position_share`` of its occurrences sit at the same place on
    the page (the k-th image from the start, or from the end).
A site logo (small, flat, first on every page) has three traits and goes; a reused photo has at most
one (it may well be first on every page) and stays.

Memory: one counter per cluster seen in documents, and position counters for the frequent ones only.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.dedup.config import DedupConfig


@dataclass(frozen=True)
class PixelStats:
    entropy: float  # bits, gray-level histogram of a 128 px thumbnail

    @classmethod
    def of(cls, image: Image.Image) -> PixelStats:
        gray = np.asarray(image.convert("L").resize((128, 128), Image.Resampling.BOX)).ravel()
        p = np.bincount(gray, minlength=256) / gray.size
        p = p[p > 0]
        return cls(entropy=float(-(p * np.log2(p)).sum()))

    @classmethod
    def of_bytes(cls, data: bytes) -> PixelStats:
        with Image.open(io.BytesIO(data)) as img:
            return cls.of(img)


@dataclass(frozen=True)
class Boilerplate:
    cluster_id: str
    documents: int
    traits: tuple[str, ...]

    def detail(self) -> str:
        return f"documents={self.documents} traits={','.join(self.traits) or '-'}"


def document_frequency(doc_images: Iterable[list[str]], cluster_of: Mapping[str, str]) -> Counter[str]:
    """Number of documents each cluster appears in (once per document however often it repeats)."""
    counts: Counter[str] = Counter()
    for image_ids in doc_images:
        counts.update({cluster_of.get(i, i) for i in image_ids})
    return counts


def position_shares(
    doc_images: Iterable[list[str]], cluster_of: Mapping[str, str], wanted: set[str]
) -> dict[str, float]:
    """For each wanted cluster, the largest share of its occurrences at one place on the page."""
    from_start: dict[str, Counter[int]] = {c: Counter() for c in wanted}
    from_end: dict[str, Counter[int]] = {c: Counter() for c in wanted}
    for image_ids in doc_images:
        n = len(image_ids)
        for k, image_id in enumerate(image_ids):
            cluster = cluster_of.get(image_id, image_id)
            if cluster in wanted:
                from_start[cluster][k] += 1
                from_end[cluster][n - 1 - k] += 1
    shares = {}
    for c in wanted:
        total = sum(from_start[c].values())
        best = max(max(from_start[c].values(), default=0), max(from_end[c].values(), default=0))
        shares[c] = best / total if total else 0.0
    return shares


def traits(
    size: tuple[int, int], stats: PixelStats | None, position_share: float, cfg: DedupConfig
) -> tuple[str, ...]:
    """The furniture traits one cluster shows (see the module docstring)."""
    width, height = size
    found = []
    aspect = max(width, height) / max(1, min(width, height))
    if max(width, height) <= cfg.icon_max_side or aspect >= cfg.icon_min_aspect:
        found.append("icon_like")
    if stats is not None and stats.entropy < cfg.flat_max_entropy:
        found.append("flat")
    if position_share >= cfg.fixed_position_share:
        found.append("fixed_position")
    return tuple(found)


def find_boilerplate(
    doc_images: list[list[str]],
    cluster_of: Mapping[str, str],
    sizes: Mapping[str, tuple[int, int]],
    stats_of: Mapping[str, PixelStats] | None,
    cfg: DedupConfig,
) -> dict[str, Boilerplate]:
    """``{cluster_id: Boilerplate}`` of every cluster the rule calls boilerplate.

    ``sizes`` and ``stats_of`` are keyed by cluster id (its representative image), for at least the
    clusters ``frequent_clusters`` returns.
    """
    counts = document_frequency(doc_images, cluster_of)
    frequent = {c for c, n in counts.items() if n >= cfg.boilerplate_min_documents}
    shares = position_shares(doc_images, cluster_of, frequent)
    found = {}
    for cluster in sorted(frequent):
        stats = stats_of.get(cluster) if stats_of is not None else None
        kind = traits(sizes[cluster], stats, shares[cluster], cfg)
        if len(kind) >= cfg.boilerplate_min_traits:
            found[cluster] = Boilerplate(cluster, counts[cluster], kind)
    return found


def frequent_clusters(
    doc_images: Iterable[list[str]], cluster_of: Mapping[str, str], cfg: DedupConfig
) -> set[str]:
    """The clusters frequent enough to be considered (whose sizes and pixel stats the rule needs)."""
    counts = document_frequency(doc_images, cluster_of)
    return {c for c, n in counts.items() if n >= cfg.boilerplate_min_documents}
