"""Scoring a dedup run against planted truth (the sample corpus's ``truth.json``).

Inputs: a run folder where extract and dedup ran, and the truth file. Outputs: precision and recall of
near-duplicate image pairs and of duplicate group pairs.

Both sides are compared as sets of pairs after transitive closure: truth pairs (original, copy) are
joined into components, and the predicted side is every pair inside a near-duplicate cluster (images)
or inside a set of groups that dedup called duplicates (the kept group and those dropped for it).
``edit_set_scores`` scores the pixel decision alone on the labelled copy/edit set
(``pipeline.sample_corpus.editset``): per recipe, how many copies it confirms and how many edits it keeps.

Truth image paths map to image ids through the images table's ``source``; truth groups map to group
ids through the groups table (same document source and positions).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from itertools import combinations
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from manifests.drops import DropReason
from manifests.tables import read_table
from pipeline.dedup.clusters import cluster_ids
from pipeline.dedup.verify import Limits, PixelSignature, compare
from pipeline.sample_corpus.editset import Pair


def _closure(pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    pairs = [p for p in pairs if p[0] != p[1]]
    clusters = cluster_ids([], [p[0] for p in pairs], [p[1] for p in pairs])
    members: dict[str, list[str]] = defaultdict(list)
    for item, cluster in clusters.items():
        members[cluster].append(item)
    return {tuple(sorted(p)) for group in members.values() for p in combinations(group, 2)}  # type: ignore[misc]


def _scores(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, Any]:
    hits = len(predicted & truth)
    return {
        "precision": hits / len(predicted) if predicted else 1.0,
        "recall": hits / len(truth) if truth else 1.0,
        "predicted_pairs": len(predicted),
        "truth_pairs": len(truth),
        "false_positives": sorted(predicted - truth)[:10],
        "missed": sorted(truth - predicted)[:10],
    }


def _recall(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, Any]:
    return {"recall": len(predicted & truth) / len(truth) if truth else 1.0, "truth_pairs": len(truth)}


def _pairs_in_groups(groups: Any) -> set[tuple[str, str]]:
    """Every pair of distinct images that share a candidate group."""
    return {
        tuple(sorted(p))  # type: ignore[misc]
        for ids in groups.column("image_ids").to_pylist()
        for p in combinations(sorted(set(ids)), 2)
    }


def _edit_survival(run: Path, edit_pairs: list[dict[str, str]], id_of: dict[str, str]) -> dict[str, Any]:
    """Per edit kind: the before/after pairs that dedup kept apart (no confirmed near-duplicate edge
    between the two; within a group that is what keeps the edited image)."""
    edges = read_table(run, "dedup", "edges", columns=["a", "b"])
    linked = set(zip(edges.column("a").to_pylist(), edges.column("b").to_pylist(), strict=True))
    out: dict[str, Any] = {}
    for pair in edit_pairs:
        a, b = id_of.get(pair["original"]), id_of.get(pair["edited"])
        if a is None or b is None or a == b:
            continue
        row = out.setdefault(pair["kind"], {"pairs": 0, "kept": 0, "lost": []})
        row["pairs"] += 1
        if (min(a, b), max(a, b)) in linked:
            row["lost"].append(pair["edited"])
        else:
            row["kept"] += 1
    return dict(sorted(out.items()))


def evaluate(run: Path, truth_path: Path) -> dict[str, Any]:
    """``{"images": {...}, "groups": {...}, "edits": {...}}``: precision, recall (image pairs also split
    into pairs inside one group and pairs across groups) with a few examples of errors, and per edit
    kind the before/after pairs kept apart."""
    truth = json.loads(Path(truth_path).read_text())
    images = read_table(run, "extract", "images", columns=["image_id", "source"])
    id_of = dict(zip(images.column("source").to_pylist(), images.column("image_id").to_pylist(), strict=True))
    image_truth = [
        (id_of[a], id_of[b]) for a, b in truth["near_duplicate_images"] if a in id_of and b in id_of
    ]
    clusters = read_table(run, "dedup", "clusters", columns=["image_id", "cluster_id"])
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for image_id, cluster in zip(
        clusters.column("image_id").to_pylist(), clusters.column("cluster_id").to_pylist(), strict=True
    ):
        by_cluster[cluster].append(image_id)
    image_pred = {tuple(sorted(p)) for m in by_cluster.values() for p in combinations(m, 2)}

    groups = read_table(run, "extract", "groups", columns=["group_id", "source", "positions"])
    group_of = {
        (src, tuple(pos)): gid
        for gid, src, pos in zip(
            groups.column("group_id").to_pylist(),
            groups.column("source").to_pylist(),
            groups.column("positions").to_pylist(),
            strict=True,
        )
    }

    def gid(entry: dict[str, Any]) -> str | None:
        return group_of.get((entry["doc_url"], tuple(entry["positions"])))

    group_truth = [(gid(a), gid(b)) for a, b in truth["duplicate_groups"]]
    drops = read_table(run, "dedup", "drops", columns=["id", "reason", "detail"])
    dup = drops.filter(pc.equal(drops.column("reason"), str(DropReason.DUPLICATE_GROUP)))
    group_pred = [
        (g, d.removeprefix("duplicate_of="))
        for g, d in zip(dup.column("id").to_pylist(), dup.column("detail").to_pylist(), strict=True)
    ]
    unmapped = sum(1 for p in group_truth if None in p)
    image_closure = _closure(image_truth)
    together = _pairs_in_groups(read_table(run, "extract", "groups", columns=["image_ids"]))
    return {
        "images": {
            **_scores(image_pred, image_closure),
            "unmapped": len(truth["near_duplicate_images"]) - len(image_truth),
            "recall_within_groups": _recall(image_pred, image_closure & together),
            "recall_across_groups": _recall(image_pred, image_closure - together),
        },
        "edits": _edit_survival(run, truth.get("edit_pairs", []), id_of),
        "groups": {
            **_scores(_closure(group_pred), _closure([p for p in group_truth if None not in p])),  # type: ignore[misc]
            "unmapped": unmapped,
        },
    }


def edit_set_scores(pairs: Iterable[Pair], limits: Limits) -> dict[str, dict[str, Any]]:
    """``{recipe: {"kind", "pairs", "right", "wrong": [photo, ...]}}``: right is a confirmed copy or a
    kept edit (the decision alone: every pair is treated as a candidate)."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        match = compare(PixelSignature.of_bytes(pair.original), PixelSignature.of_bytes(pair.variant))
        row = out.setdefault(pair.name, {"kind": pair.kind, "pairs": 0, "right": 0, "wrong": []})
        row["pairs"] += 1
        if match.is_copy(limits) == (pair.kind == "copy"):
            row["right"] += 1
        else:
            row["wrong"].append(pair.photo)
    return out


def kind_totals(scores: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """``{"copy": (confirmed, pairs), "edit": (kept, pairs)}`` over every recipe."""
    totals = {"copy": [0, 0], "edit": [0, 0]}
    for row in scores.values():
        totals[row["kind"]][0] += row["right"]
        totals[row["kind"]][1] += row["pairs"]
    return {k: (v[0], v[1]) for k, v in totals.items()}
