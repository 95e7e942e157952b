"""The near-duplicate rule for one pair of images: candidate by hash or vector, confirmed on the pixels.

Inputs: candidate pairs (image ids, pHash distance, cosine when vectors exist) and, when pixel checks are
on, a ``PixelSignature`` per image. Outputs: the ``edges`` table of confirmed pairs (the dedup stage's
evidence: which index found each pair, and how far apart the two images are).

The same rule serves within groups and across the collection:
- candidate: ``phash <= phash_radius`` or (``combine='and'``: and) ``cosine >= min_cosine``;
- confirmed: ``phash <= max_phash`` and, with ``verify_pixels``, the aligned pixel check of verify.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.verify import PixelSignature, compare

EDGES = pa.schema(
    [
        pa.field("a", pa.string(), nullable=False),  # image_id (a < b)
        pa.field("b", pa.string(), nullable=False),
        pa.field("phash_distance", pa.int8(), nullable=False),
        pa.field("cosine", pa.float32()),  # null without vectors
        pa.field("pixel_diff", pa.float32()),  # null without the pixel check
        pa.field("found_by", pa.string(), nullable=False),  # "phash" | "vector" | "group"
    ]
)


@dataclass
class Candidates:
    """Candidate pairs as parallel arrays (ids as Python lists, measures as numpy arrays)."""

    a: list[str]
    b: list[str]
    phash_distance: np.ndarray  # int
    cosine: np.ndarray  # float32, NaN where unknown
    found_by: str

    def __len__(self) -> int:
        return len(self.a)

    def take(self, mask: np.ndarray) -> Candidates:
        keep = np.flatnonzero(mask)
        return Candidates(
            [self.a[k] for k in keep],
            [self.b[k] for k in keep],
            self.phash_distance[keep],
            self.cosine[keep],
            self.found_by,
        )


def is_candidate(phash_distance: np.ndarray, cosine: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """Which pairs the indexes would propose (NaN cosines never pass the vector test)."""
    by_hash = phash_distance <= cfg.phash_radius
    if cfg.min_cosine is None:
        return by_hash
    with np.errstate(invalid="ignore"):
        by_vector = cosine >= cfg.min_cosine
    return by_hash & by_vector if cfg.combine == "and" else by_hash | by_vector


def confirm(
    candidates: Candidates, cfg: DedupConfig, signatures: Mapping[str, PixelSignature] | None
) -> pa.Table:
    """The ``edges`` rows of the candidates that the rule confirms."""
    kept = candidates.take(candidates.phash_distance <= cfg.max_phash)
    diffs = np.full(len(kept), np.nan, dtype=np.float32)
    if cfg.verify_pixels and len(kept):
        if signatures is None:
            raise ValueError("verify_pixels is on but no pixel signatures were given")
        ok = np.zeros(len(kept), dtype=bool)
        limits = cfg.pixel_limits()
        for k, (a, b) in enumerate(zip(kept.a, kept.b, strict=True)):
            sig_a, sig_b = signatures.get(a), signatures.get(b)
            if sig_a is None or sig_b is None:
                continue  # an image that no longer decodes is never called a copy
            match = compare(sig_a, sig_b)
            diffs[k] = match.difference
            ok[k] = match.is_copy(limits)
        kept, diffs = kept.take(ok), diffs[ok]
    a, b = zip(*(sorted(p) for p in zip(kept.a, kept.b, strict=True)), strict=True) if len(kept) else ((), ())
    return pa.table(
        {
            "a": pa.array(a, pa.string()),
            "b": pa.array(b, pa.string()),
            "phash_distance": pa.array(kept.phash_distance.astype(np.int8)),
            "cosine": pa.array(kept.cosine, pa.float32(), from_pandas=True),
            "pixel_diff": pa.array(diffs, pa.float32(), from_pandas=True),
            "found_by": pa.array([kept.found_by] * len(kept), pa.string()),
        },
        schema=EDGES,
    )
