"""Group-size and category distributions of the candidate groups and of the groups still kept.

Inputs: ``extract/groups`` (candidates), the current groups (``reading.kept_groups``) and a
``CategoryResolver``. Memory: counters only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from manifests.storage import AnyPath
from pipeline.report.categories import UNKNOWN, CategoryResolver
from pipeline.report.reading import groups_stage, kept_groups, stream

Rows = list[tuple[str, list[int | None]]]


@dataclass
class Distributions:
    kept_from: str | None  # the stage whose groups table is current
    sizes: Rows = field(default_factory=list)  # ("n = 3", [candidates, kept])
    categories: Rows = field(default_factory=list)  # ("font", [candidates, kept])
    category_sources: dict[str, int] = field(default_factory=dict)  # kept groups per category source
    candidates: int = 0
    kept: int = 0


def distributions(run: AnyPath, categories: CategoryResolver) -> Distributions:
    result = Distributions(kept_from=groups_stage(run))
    if result.kept_from is None:
        return result
    sizes: dict[str, Counter[int]] = {"candidates": Counter(), "kept": Counter()}
    kinds: dict[str, Counter[str]] = {"candidates": Counter(), "kept": Counter()}
    sources: Counter[str] = Counter()
    for row in stream(run, "extract", "groups", ["group_id", "image_ids"]):
        sizes["candidates"][len(row["image_ids"])] += 1
        kinds["candidates"][categories.of(row["group_id"])[0]] += 1
    for row in kept_groups(run, ["image_ids"]):
        category, source = categories.of(row["group_id"])
        sizes["kept"][len(row["image_ids"])] += 1
        kinds["kept"][category] += 1
        sources[source] += 1
    result.candidates, result.kept = sum(sizes["candidates"].values()), sum(sizes["kept"].values())
    result.sizes = [
        (f"{n} images", [sizes["candidates"][n], sizes["kept"][n]])
        for n in sorted(set(sizes["candidates"]) | set(sizes["kept"]))
    ]
    names = sorted(set(kinds["candidates"]) | set(kinds["kept"]), key=lambda c: (c == UNKNOWN, c))
    result.categories = [(c, [kinds["candidates"][c], kinds["kept"][c]]) for c in names]
    result.category_sources = dict(sorted(sources.items()))
    return result
