"""The funnel: how many documents, references, images and groups each stage let through.

Inputs: the stages' manifests (counts in/out, drops) and ``labels/labels.parquet``. Output: one
``FunnelStep`` per step, with ``count`` None where the stage has not run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from manifests.ledger import StageManifest
from manifests.storage import AnyPath, as_path, read_parquet
from pipeline.report.reading import manifest_of


@dataclass
class FunnelStep:
    key: str
    label: str
    stage: str  # the folder the number comes from
    count: int | None  # None: that stage has not run
    note: str = ""


def _labels(run: AnyPath) -> tuple[int | None, str]:
    path = as_path(run) / "labels" / "labels.parquet"
    if not path.exists():
        return None, ""
    labels = Counter(read_parquet(path, columns=["label"]).column("label").to_pylist())
    note = ", ".join(f"{n:,} {label}" for label, n in sorted(labels.items()))
    return sum(labels.values()), f"a labelled subset for training the classifier ({note})"


def _kept_by_classify(m: StageManifest) -> int:
    groups_in = m.counts_in.get("groups", m.counts_out.get("scores", 0))
    return max(0, groups_in - sum(m.dropped.values()))


def funnel(run: AnyPath) -> list[FunnelStep]:
    extract, classify = manifest_of(run, "extract"), manifest_of(run, "classify")
    dedup, caption, shard = manifest_of(run, "dedup"), manifest_of(run, "caption"), manifest_of(run, "shard")

    def ex(key: str, out: bool) -> int | None:
        if extract is None:
            return None
        return (extract.counts_out if out else extract.counts_in).get(key)

    labelled, label_note = _labels(run)
    dedup_kept = None if dedup is None else dedup.counts_out.get("groups", dedup.extra.get("groups_kept"))
    captioned = None if caption is None else caption.counts_out.get("captions")
    sharded = None if shard is None else shard.counts_out.get("index")
    return [
        FunnelStep("documents", "documents", "extract", ex("documents", False)),
        FunnelStep("references", "image references", "extract", ex("references", False)),
        FunnelStep("images", "distinct images kept", "extract", ex("images", True)),
        FunnelStep("candidates", "candidate groups", "extract", ex("groups", True)),
        FunnelStep("labelled", "labelled groups", "labels", labelled, label_note),
        FunnelStep(
            "kept",
            "kept by the classifier",
            "classify",
            None if classify is None else _kept_by_classify(classify),
        ),
        FunnelStep("deduplicated", "after dedup", "dedup", dedup_kept),
        FunnelStep("captioned", "captioned", "caption", captioned),
        FunnelStep("sharded", "in shards", "shard", sharded),
    ]
