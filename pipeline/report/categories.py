"""What kind of group each group is (font, story, edit ...), from the best source the run has.

Sources, best first: the ``category`` of the group's sample in the shards (``{group_id}.json``), the
caption template chosen for it (``caption/captions`` ``template`` = "name@version#hash"; the offline
context captioner's and the generic template say nothing about the kind), and the sample corpus's
truth file when ``--truth`` is given (matched by document source and positions). Otherwise "unknown".

Memory: one entry per group that has a category from some source (about 100 bytes each).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable
from pathlib import Path

from manifests.storage import AnyPath, as_path
from pipeline.report.reading import stream

UNKNOWN = "unknown"
# Template names that are not a kind of group: the offline captioner, the fallback, and "no caption".
NOT_A_KIND = frozenset({"", "context", "generic", "none"})
SOURCES = ("shard", "caption", "truth")


def shard_categories(run: AnyPath, shard_names: Iterable[str]) -> dict[str, str]:
    """``{group_id: category}`` from the JSON member of every sample that has a category."""
    found: dict[str, str] = {}
    for name in shard_names:
        path = as_path(run) / "shard" / Path(name).name  # a name, never a path out of the shard folder
        try:
            with path.open("rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
                for member in tar:
                    if not member.isfile() or not member.name.endswith(".json") or member.size > 1 << 20:
                        continue
                    handle = tar.extractfile(member)
                    meta = json.loads(handle.read()) if handle else {}
                    category = meta.get("category") if isinstance(meta, dict) else None
                    if isinstance(category, str) and category and isinstance(meta.get("group_id"), str):
                        found[meta["group_id"]] = category
        except (OSError, tarfile.TarError, ValueError):
            continue  # a shard the report cannot read: its groups fall back to the other sources
    return found


def caption_categories(run: AnyPath) -> dict[str, str]:
    found = {}
    for row in stream(run, "caption", "captions", ["group_id", "template"]):
        name = (row["template"] or "").split("@", 1)[0]
        if name not in NOT_A_KIND:
            found[row["group_id"]] = name
    return found


def truth_categories(run: AnyPath, truth_path: Path) -> dict[str, str]:
    """``{group_id: category}`` for the truth's groups that are candidate groups of this run."""
    data = json.loads(Path(truth_path).read_text())
    groups = data.get("groups", []) if isinstance(data, dict) else data
    wanted = {}
    for item in groups if isinstance(groups, list) else []:
        if isinstance(item, dict) and item.get("category") and "doc_url" in item and "positions" in item:
            wanted[(str(item["doc_url"]), tuple(int(p) for p in item["positions"]))] = str(item["category"])
    found = {}
    for row in stream(run, "extract", "groups", ["group_id", "source", "positions"]):
        category = wanted.get((row["source"], tuple(row["positions"])))
        if category is not None:
            found[row["group_id"]] = category
    return found


class CategoryResolver:
    """The category of a group and where it came from."""

    def __init__(self, by_source: dict[str, dict[str, str]]):
        self.by_source = by_source

    @classmethod
    def for_run(cls, run: AnyPath, truth: Path | None, shard_names: Iterable[str]) -> CategoryResolver:
        return cls(
            {
                "shard": shard_categories(run, shard_names),
                "caption": caption_categories(run),
                "truth": truth_categories(run, truth) if truth else {},
            }
        )

    def of(self, group_id: str) -> tuple[str, str]:
        for source in SOURCES:
            category = self.by_source.get(source, {}).get(group_id)
            if category:
                return category, source
        return UNKNOWN, UNKNOWN
