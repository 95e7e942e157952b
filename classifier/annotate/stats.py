"""Run-wide labelling figures for the stats page, ``/api/stats`` and ``gdt label stats``.

Input: the label store (current labels, review decisions, queue counts) and the number of candidate
groups. Output: a JSON-able dict: group counts, per-annotator counts and agreement figures.
"""

from __future__ import annotations

from typing import Any

from classifier.annotate.agreement import agreement_summary
from classifier.annotate.review import final_labels
from classifier.annotate.store import LabelStore


def run_stats(store: LabelStore, n_groups: int, labels_per_group: int, order: str | None) -> dict[str, Any]:
    by_group = store.labels_by_group()
    complete = sum(len(labels) >= labels_per_group for labels in by_group.values())
    return {
        "groups": {
            "total": n_groups,
            "labelled": len(by_group),
            "complete": complete,
            "open": store.open_count,
            "decided_by_review": len(final_labels(store)),
        },
        "labels_per_group": labels_per_group,
        "order": order,
        "per_annotator": store.counts(),
        "agreement": agreement_summary(by_group),
    }
