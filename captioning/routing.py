"""Routing accuracy: the kind the caption stage gives each group, against a truth file's kinds.

Inputs: a run folder (groups, images, documents) and a truth JSON with ``groups`` [{doc_url, positions,
kind}] (the sample corpus writes one). A run group matches the truth group of its document whose
positions hold all of its own (dedup may have removed some). Output: per kind, how many groups of that
true kind were routed to it, and the confusion counts; ``gdt caption eval --truth`` prints it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from captioning.furniture import repeated_sentences
from captioning.inputs import group_kind, image_bytes, plan_parts, read_groups
from captioning.kinds import KINDS
from manifests.storage import as_path, read_parquet


def routed_kinds(run: Path, stage: str) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """group id -> (kind, document source, positions) for every group of ``stage``'s groups table."""
    run = as_path(run)
    out = {}
    for plan in plan_parts(run, stage, 256, {}, repeated_sentences(run)):
        groups = read_groups(run, plan.groups, plan.furniture)
        images = image_bytes(run, [i for g in groups for i in g.image_ids])
        table = read_parquet(run / plan.groups.path, columns=["source", "positions"])
        rows = table.slice(plan.groups.start, plan.groups.length).to_pylist()
        for group, row in zip(groups, rows, strict=True):
            out[group.group_id] = (group_kind(group, images), row["source"], tuple(row["positions"]))
    return out


def routing_accuracy(run: Path, stage: str, truth_path: Path) -> dict[str, Any]:
    """Per true kind: total, routed correctly, accuracy, and what the rest were routed to."""
    truth = json.loads(Path(truth_path).read_text())
    by_doc: dict[str, list[tuple[set[int], str]]] = defaultdict(list)
    for g in truth["groups"]:
        if "kind" not in g:
            raise ValueError(f"truth {truth_path} has no per-group kind; rebuild it with `gdt sample-corpus`")
        by_doc[g["doc_url"]].append((set(g["positions"]), g["kind"]))
    confusion: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    unmatched = 0
    for kind, source, positions in routed_kinds(run, stage).values():
        true = next((k for pos, k in by_doc.get(source, []) if set(positions) <= pos), None)
        if true is None:
            unmatched += 1
            continue
        confusion.setdefault(true, Counter())[kind] += 1
    kinds = {}
    for true, counts in confusion.items():
        total = sum(counts.values())
        if total:
            kinds[true] = {
                "total": total,
                "correct": counts[true],
                "accuracy": round(counts[true] / total, 4),
                "routed_to": dict(sorted(counts.items())),
            }
    return {"stage": stage, "truth": str(truth_path), "kinds": kinds, "unmatched_groups": unmatched}
