"""Drops by reason for every stage, with a few seeded examples of each reason.

Inputs: each stage's ``drops`` table, and ``extract/{documents,groups,images}`` to show what an example
was. A reference that was never stored as an image (too small, broken, not an image) shows its
reference text and the drop's detail; one that was (a duplicate inside a group) shows its thumbnail.
Output: one ``StageDrops`` per stage folder; memory is the examples and one count per reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from manifests.drops import DropKind
from manifests.storage import AnyPath
from manifests.tables import has_table
from pipeline.report.config import ReportConfig
from pipeline.report.reading import STAGES, Reservoir, manifest_of, rows_by_id, stream
from pipeline.report.text import clip


@dataclass
class DropExample:
    id: str
    kind: str
    reason: str
    detail: str
    image_ids: list[str] = field(default_factory=list)
    text: str = ""  # the reference as written, or the document's source


@dataclass
class ReasonDrops:
    reason: str
    count: int
    examples: list[DropExample]


@dataclass
class StageDrops:
    stage: str
    ran: bool
    reasons: list[ReasonDrops] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.reasons)


def stage_drops(run: AnyPath, cfg: ReportConfig) -> list[StageDrops]:
    out = []
    for stage in STAGES:
        ran = manifest_of(run, stage) is not None
        if not has_table(run, stage, "drops"):
            out.append(StageDrops(stage, ran))
            continue
        counts: Counter[str] = Counter()
        samples: dict[str, Reservoir[DropExample]] = {}
        for row in stream(run, stage, "drops", ["id", "kind", "reason", "detail"]):
            reason = row["reason"]
            counts[reason] += 1
            if reason not in samples:
                samples[reason] = Reservoir(cfg.examples_per_reason, cfg.seed, f"drops:{stage}:{reason}")
            samples[reason].add(DropExample(row["id"], row["kind"], reason, row["detail"]))
        reasons = [
            ReasonDrops(reason, n, samples[reason].items) for reason, n in sorted(counts.items(), key=_order)
        ]
        out.append(StageDrops(stage, ran, reasons))
    resolve_examples(run, [e for s in out for r in s.reasons for e in r.examples], cfg.text_chars)
    return out


def _order(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def _split_reference(ref_id: str) -> tuple[str, int] | None:
    doc_id, sep, position = ref_id.rpartition("/")
    return (doc_id, int(position)) if sep and position.isdigit() else None


def resolve_examples(run: AnyPath, examples: list[DropExample], text_chars: int) -> None:
    """Fill in each example's images and text from the extract tables (one scan per table)."""
    by_kind: dict[str, list[DropExample]] = defaultdict(list)
    for example in examples:
        by_kind[example.kind].append(example)
    refs = {e.id: _split_reference(e.id) for e in by_kind[str(DropKind.REFERENCE)]}
    doc_ids = {r[0] for r in refs.values() if r} | {e.id for e in by_kind[str(DropKind.DOCUMENT)]}
    docs = rows_by_id(
        run, "extract", "documents", "doc_id", doc_ids, ["source", "image_refs", "image_ids", "positions"]
    )
    for example in by_kind[str(DropKind.REFERENCE)]:
        ref = refs[example.id]
        doc = docs.get(ref[0]) if ref else None
        if doc is None or ref is None:
            continue
        _, position = ref
        if 0 <= position < len(doc["image_refs"]):
            example.text = clip(doc["image_refs"][position] or "", text_chars)
        if position in doc["positions"]:
            example.image_ids = [doc["image_ids"][doc["positions"].index(position)]]
    for example in by_kind[str(DropKind.DOCUMENT)]:
        doc = docs.get(example.id)
        example.text = clip(doc["source"], text_chars) if doc else ""

    group_examples = by_kind[str(DropKind.GROUP)]
    groups = rows_by_id(
        run, "extract", "groups", "group_id", [e.id for e in group_examples], ["image_ids", "source"]
    )
    for example in group_examples:
        group = groups.get(example.id)
        if group:
            example.image_ids, example.text = group["image_ids"], clip(group["source"], text_chars)

    image_examples = by_kind[str(DropKind.IMAGE)]
    images = rows_by_id(run, "extract", "images", "image_id", [e.id for e in image_examples], ["source"])
    for example in image_examples:
        image = images.get(example.id)
        example.image_ids = [example.id]
        example.text = clip(image["source"], text_chars) if image else ""
