"""The ``report:`` config section: gallery sizes, thumbnail size and the sampling seed."""

from __future__ import annotations

from pydantic import Field

from manifests.config import StageConfig


class ReportConfig(StageConfig):
    seed: int = 0  # galleries and drop examples are a seeded random sample: the same run, the same page
    gallery_groups: int = Field(default=12, ge=0, le=200)  # kept groups shown with their captions
    rejected_groups: int = Field(default=6, ge=0, le=200)  # low_score groups shown
    duplicate_groups: int = Field(default=6, ge=0, le=200)  # duplicate groups shown beside their survivor
    examples_per_reason: int = Field(default=4, ge=0, le=50)  # drop examples per stage and reason
    clusters_shown: int = Field(default=8, ge=0, le=200)  # largest near-duplicate clusters shown
    images_per_cluster: int = Field(default=6, ge=1, le=50)
    max_shards_listed: int = Field(default=200, ge=1)  # rows of the per-shard table; totals cover all
    thumb_px: int = Field(default=160, ge=32, le=1024)  # longest side of a thumbnail
    text_chars: int = Field(default=300, ge=20)  # document text (references, captions) is cut to this
