"""The ``dedup:`` section of a run's config: what counts as a near-duplicate image, a duplicate group and
boilerplate, and how the work is cut into parts."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from manifests.config import StageConfig
from pipeline.dedup.verify import Limits


class DedupConfig(StageConfig):
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"images_per_part", "groups_per_part", "key_splits"})

    # --- near-duplicate images: candidates from the indexes, then confirmed -----------------------------
    phash_radius: int = Field(default=8, ge=0, le=16)  # candidates: pHash Hamming distance <= radius
    phash_key_bits: int = Field(default=16, ge=8, le=32)  # index table key length (speed, not results)
    min_cosine: float | None = Field(default=0.85, gt=0, le=1)  # candidates: vector cosine; None: hashes only
    combine: Literal["or", "and"] = "or"  # "and": a candidate needs both signals (needs embeddings)
    max_phash: int = Field(default=20, ge=0, le=64)  # never a copy beyond this (mirror, rotation: 22+)
    verify_pixels: bool = True  # confirm candidates on the aligned decoded images (see verify.py)
    # the pixel check's limits (verify.py says what each measures; calibrated on the copy/edit set)
    max_pixel_diff: float = Field(default=8.0, gt=0)  # mean absolute RGB difference, 0-255
    max_local_diff: float = Field(default=3.5, gt=0)  # worst tile of the misalignment-tolerant difference
    max_changed_share: float = Field(default=0.002, ge=0, le=1)  # share of pixels off by > 64 levels
    min_structure: float = Field(default=0.88, ge=-1, le=1)  # SSIM of the aligned gray images
    max_sharpness_ratio: float = Field(default=1.35, ge=1)  # blur / sharpen (JPEG q35 copies reach 1.29)
    max_texture_change: float = Field(default=0.45, ge=0)  # worst tile's texture change (log ratio)
    max_frame_contrast: float = Field(default=60.0, ge=0)  # a flat strip cut off by alignment: a frame
    nprobe: int = Field(default=8, ge=1)  # vector index cells each image probes (see vectorindex.py)
    vector_exact_below: int = Field(default=20_000, ge=0)  # up to this many embedded images: exact search

    # --- groups -----------------------------------------------------------------------------------------
    min_group_size: int = Field(default=2, ge=1)  # a group left smaller than this after removals goes
    group_jaccard: float = Field(default=0.75, gt=0, le=1)  # duplicate groups: cluster-id sets this alike
    min_shared_clusters: int = Field(default=2, ge=1)  # ...and sharing at least this many (one shared
    # original is never enough)
    group_cosine: float | None = Field(default=None, gt=0, le=1)  # also: mean group vectors this close
    # (and equally long); off by default: edit pairs of one original have close means

    # --- boilerplate ------------------------------------------------------------------------------------
    boilerplate_min_documents: int = Field(default=5, ge=2)  # seen in at least this many documents...
    boilerplate_min_traits: int = Field(default=2, ge=1)  # ...and showing this many furniture traits
    icon_max_side: int = Field(default=200, ge=1)  # trait "icon-like": longer side at most this
    icon_min_aspect: float = Field(default=3.0, ge=1)  # ...or a banner / rule this elongated
    flat_max_entropy: float = Field(default=5.5, ge=0)  # trait "flat": gray-level entropy (bits) below
    fixed_position_share: float = Field(default=0.8, gt=0, le=1)  # trait "fixed position": this share
    # of its occurrences sit at the same place (k-th image from the start, or from the end)

    # --- parts ------------------------------------------------------------------------------------------
    images_per_part: int = Field(default=250_000, ge=1)  # vector queries per part
    groups_per_part: int = Field(default=20_000, ge=1)  # groups per within-group part
    key_splits: int = Field(default=1, ge=1)  # key ranges per hash table (more, smaller parts)

    def pixel_limits(self) -> Limits:
        return Limits(
            max_difference=self.max_pixel_diff,
            max_local_difference=self.max_local_diff,
            max_changed_share=self.max_changed_share,
            min_structure=self.min_structure,
            max_sharpness_ratio=self.max_sharpness_ratio,
            max_texture_change=self.max_texture_change,
            max_frame_contrast=self.max_frame_contrast,
        )

    @model_validator(mode="after")
    def _check(self) -> DedupConfig:
        if self.max_phash < self.phash_radius:
            raise ValueError("max_phash must be at least phash_radius")
        if self.combine == "and" and self.min_cosine is None:
            raise ValueError("combine='and' needs min_cosine")
        return self
