"""Kept images of a document -> candidate groups.

A candidate group is a run of the document's kept images, in order, where the text between two
consecutive kept images is at most ``max_text_between`` characters (dropped references do not end a run:
they are usually icons between content). Runs of ``min_group_size`` to ``max_group_size`` images are
groups; a longer run is split into near-equal consecutive windows (or slid with ``window_stride``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class KeptImage:
    position: int  # index of the reference in the document's image_refs
    text_chars_before: int  # characters of text between this image and the previous kept image


def runs(kept: list[KeptImage], max_text_between: int) -> list[list[int]]:
    """Indices into ``kept`` of each maximal run."""
    out: list[list[int]] = []
    for index, image in enumerate(kept):
        if out and image.text_chars_before <= max_text_between:
            out[-1].append(index)
        else:
            out.append([index])
    return out


def windows(run: list[int], min_size: int, max_size: int, stride: int | None) -> list[list[int]]:
    if len(run) < min_size:
        return []
    if len(run) <= max_size:
        return [run]
    if stride is not None:
        starts = range(0, len(run) - max_size + stride, stride)
        return [run[s : s + max_size] for s in starts if len(run[s : s + max_size]) >= min_size]
    count = math.ceil(len(run) / max_size)
    base, extra = divmod(len(run), count)
    out, start = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        out.append(run[start : start + size])
        start += size
    return [w for w in out if len(w) >= min_size]


def candidate_groups(
    kept: list[KeptImage], min_size: int, max_size: int, max_text_between: int, stride: int | None = None
) -> list[list[int]]:
    """Indices into ``kept`` of every candidate group, in document order."""
    return [w for run in runs(kept, max_text_between) for w in windows(run, min_size, max_size, stride)]
