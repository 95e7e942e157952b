"""Configuration of the shard stage (the ``shard:`` section of a run config)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from manifests.config import StageConfig


class ShardConfig(StageConfig):
    # how each split, in shuffle order, is cut into shards (plan.py ``shard_keys``): by size, a group goes
    # to the shard of the target_mb slot its first byte falls in (a shard starts at each multiple of
    # target_mb of the split's bytes: shards average target_mb, and one exceeds it by at most its last
    # group); by count, exactly groups_per_shard groups per shard (the last one of a split fewer); with
    # both set, a shard ends at whichever boundary comes first. Each group's shard follows from prefix
    # sums alone, so planning runs as parallel tasks.
    target_mb: float | None = Field(256.0, gt=0)
    groups_per_shard: int | None = Field(None, ge=1)

    # train/val split by a hash of the document id, so it is stable across runs and seeds
    val_fraction: float = Field(0.05, ge=0.0, le=1.0)
    seed: int = 0  # the shuffle: groups in order of a hash of (seed, group id) before cutting

    # optional downscale: images whose longer side exceeds max_side are resized and re-encoded;
    # smaller images keep their stored bytes
    max_side: int | None = Field(None, ge=16)
    reencode_format: Literal["JPEG", "PNG", "WEBP"] = "JPEG"
    quality: int = Field(90, ge=1, le=100)

    # memory per worker for row groups of the images table kept between the shards it writes (images.py)
    cache_mb: int = Field(512, ge=0)

    runtime_fields: ClassVar[frozenset[str]] = frozenset({"cache_mb"})

    @model_validator(mode="after")
    def _some_cut(self) -> ShardConfig:
        if self.target_mb is None and self.groups_per_shard is None:
            raise ValueError("set target_mb, groups_per_shard, or both")
        return self
