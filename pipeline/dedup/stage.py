"""The dedup stage: near-duplicate images found by parts, then one global step over groups.

Inputs: ``RUN/extract/{images,groups,documents}``; ``RUN/embed/embeddings`` and ``RUN/classify/{scores,
drops}`` when present (groups dropped as ``low_score`` are not candidates; without scores every group
ties and the earlier document wins). Outputs: ``RUN/dedup/edges`` (confirmed near-duplicate pairs),
``clusters`` (image -> near-duplicate cluster), ``groups`` (the kept groups, cleaned) and ``drops``.

Parts (run on Ray by the runner, each bounded): ``phash`` parts take some tables of the multi-index hash
(and optionally a key range of them), ``vector`` parts a range of the vector index's cells (or of its
queries when it is exact), ``groups`` parts some part files of extract's groups (pairs inside each group,
beyond the hash radius: only vectors can propose those, so these parts exist only with vectors). Every
part confirms its candidates on the pixels and writes ``edges``. ``prepare`` writes the vector files once,
in a task (vectorfiles.py: the vectors, their hashes, their cells and which rows each cell stores and is
probed by), memory-mapped by the parts. Memory per part: ids and hashes of all images as Arrow and numpy
(~80 bytes per image) and one table's keys (phash); the rows of its cells and of the vectors probing them
(vector); its groups and their images' vectors (groups); and pixel signatures (at most 192 KiB) of its
candidate images only.

``finalize`` runs finalize.py's global step as a task: dense components of the edges (no chains, see
clusters.py) -> clusters; boilerplate; within-group dedup; duplicate groups. The driver only plans
(from parquet footers), submits and records: it holds nothing per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from manifests.drops import drops_table
from manifests.ledger import InputRef, StageManifest, journal, read_manifest, record_write
from manifests.schemas import DROPS, GROUPS
from pipeline.dedup import candidates as cand
from pipeline.dedup import inputs, vectorfiles
from pipeline.dedup.clusters import CLUSTERS
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.finalize import finalize_dedup
from pipeline.dedup.pairs import EDGES, Candidates, confirm
from pipeline.dedup.vectorindex import VectorIndex
from pipeline.ray_env import node_cpus, run_tasks
from pipeline.stage import Part, Stage

CELL_SIZE = VectorIndex.cell_size  # vectors per cell of the vector index (its default)
OPEN_END = 1 << 62  # the last cell range reaches every cell
PHASH_PARTS = 8  # hash tables are spread over at most this many parts (times key_splits)


class DedupStage(Stage):
    name = "dedup"
    Config = DedupConfig
    outputs: ClassVar[dict[str, pa.Schema]] = {
        "edges": EDGES,
        "clusters": CLUSTERS,
        "groups": GROUPS,
        "drops": DROPS,
    }
    upstream = ("extract",)

    def input_refs(self, cfg: DedupConfig, run: Path) -> list[InputRef]:
        refs = super().input_refs(cfg, run)
        for stage in ("embed", "classify"):  # optional inputs: used when present
            manifest = read_manifest(run / stage)
            if manifest is not None:
                refs.append(InputRef(path=stage, hash=manifest.content_hash()))
        return refs

    def plan(self, cfg: DedupConfig, run: Path) -> list[Part]:
        payloads: list[tuple[Any, ...]] = []
        index = cand.hash_index(cfg)
        tables = list(range(len(index.tables)))
        per_part = -(-len(tables) // PHASH_PARTS)
        key_space = 1 << index.key_bits  # covers the longest key
        for start in range(0, len(tables), per_part):
            for split in range(cfg.key_splits):
                lo, hi = key_space * split // cfg.key_splits, key_space * (split + 1) // cfg.key_splits
                key_range = None if cfg.key_splits == 1 else (lo, hi)
                payloads.append(("phash", tuple(tables[start : start + per_part]), key_range))
        if self._searches_vectors(cfg, run):
            n = inputs.row_count(run, "embed", "embeddings")
            if n <= cfg.vector_exact_below:  # an exact index: parts take query rows
                step, end = cfg.images_per_part, n
                how = "rows"
            else:  # cells: parts take cell ranges, the last one open-ended (cells are about n / 256)
                step, end = max(1, cfg.images_per_part // CELL_SIZE), max(1, n // CELL_SIZE)
                how = "cells"
            bounds = list(range(0, end, step))
            payloads += [
                ("vector", how, lo, bounds[k + 1] if k + 1 < len(bounds) else OPEN_END)
                for k, lo in enumerate(bounds)
            ]
            chunks = _file_chunks(inputs.file_rows(run, "extract", "groups"), cfg.groups_per_part)
            payloads += [("groups", first, last) for first, last in chunks]
        return [Part(k, p) for k, p in enumerate(payloads)]

    @staticmethod
    def _searches_vectors(cfg: DedupConfig, run: Path) -> bool:
        return cfg.min_cosine is not None and cfg.combine == "or" and inputs.has_embeddings(run)

    def prepare(self, cfg: DedupConfig, run: Path) -> None:
        """The vector files (vectorfiles.py), written once for every vector and groups part, in a task."""
        stage_dir = run / self.name
        if self._searches_vectors(cfg, run) and not vectorfiles.complete(stage_dir):
            # the parts wait for it: one task with the cores of a whole node (its threads decode and place
            # the vectors)
            threads = node_cpus()
            run_tasks(vectorfiles.write, [(str(run), cfg, str(stage_dir), threads)], num_cpus=threads)

    def load(self, cfg: DedupConfig, run: Path, part: Part) -> dict[str, Any]:
        kind = part.payload[0]
        loaded: dict[str, Any] = {"kind": kind, "payload": part.payload, "run": run}
        if kind == "phash":
            ids, hashes = inputs.image_hashes(run)
            loaded.update(ids=ids, hashes=hashes)
            if cfg.combine == "and":
                vec_ids, vecs = inputs.embeddings(run)
                loaded["vectors"] = dict(zip(vec_ids, vecs, strict=True))
        elif kind == "vector":
            loaded["files"] = vectorfiles.load(run / self.name)
        else:
            _, first, last = part.payload
            groups = inputs.candidate_groups(run, columns=["image_ids"], files=(first, last))
            loaded.update(members=groups.column("image_ids"), files=vectorfiles.load(run / self.name))
        return loaded

    def count_in(self, loaded: dict[str, Any]) -> dict[str, int]:
        if loaded["kind"] == "groups":
            return {"groups": len(loaded["members"])}
        if loaded["kind"] == "phash" and loaded["payload"][1][0] == 0 and loaded["payload"][2] is None:
            return {"images": len(loaded["ids"])}
        return {}

    def run(self, cfg: DedupConfig, loaded: dict[str, Any], state: Any) -> dict[str, pa.Table]:
        kind, payload = loaded["kind"], loaded["payload"]
        if kind == "phash":
            found = cand.from_hashes(
                loaded["ids"], loaded["hashes"], cfg, payload[1], payload[2], loaded.get("vectors")
            )
        elif kind == "vector":
            files, (_, how, lo, hi) = loaded["files"], payload
            index = VectorIndex(
                files.vectors, nprobe=cfg.nprobe, exact_below=cfg.vector_exact_below, layout=files.layout
            )
            span = {how: (lo, min(hi, len(index)))}  # rows or cells; the last range is open-ended
            found = cand.from_vectors(files.ids, files.phash, files.known, index, cfg, **span)
        else:
            files = loaded["files"]
            found = cand.within_groups(
                loaded["members"], files.ids, files.phash, files.known, files.vectors, cfg
            )
        return {"edges": confirm_candidates(found, cfg, loaded["run"]), "drops": drops_table([])}

    def finalize(self, cfg: DedupConfig, run: Path) -> dict[str, Any]:
        [(extra, written)] = run_tasks(_finalize_task, [(cfg, str(run))])
        for path, description in written.items():
            record_write(path, description)  # written in the task: reported to the runner's journal here
        return extra

    def summary_lines(self, manifest: StageManifest) -> list[str]:
        extra = manifest.extra
        lines = [
            f"clusters: {extra.get('clusters', 0):,} near-duplicate clusters holding "
            f"{extra.get('clustered_images', 0):,} images",
            f"groups: {extra.get('groups_kept', 0):,} kept of {extra.get('groups_in', 0):,} candidates "
            f"({extra.get('duplicate_groups', 0):,} duplicate groups)",
            f"boilerplate: {len(extra.get('boilerplate', []))} clusters",
        ]
        for example in extra.get("examples", []):
            lines.append(f"example: {example}")
        return lines


def confirm_candidates(found: Candidates, cfg: DedupConfig, run: Path) -> pa.Table:
    """``confirm`` with the pixel signatures of the candidates' images read from the run."""
    signatures = (
        inputs.pixel_signatures(run, {*found.a, *found.b}) if cfg.verify_pixels and len(found) else None
    )
    return confirm(found, cfg, signatures)


def _finalize_task(cfg: DedupConfig, run: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with journal() as written:
        extra = finalize_dedup(cfg, run)
    return extra, dict(written)


def _file_chunks(rows: list[int], per_part: int) -> list[tuple[int, int]]:
    """Consecutive ranges of files holding about ``per_part`` rows each (a range ends once it reaches it)."""
    chunks, first, total = [], 0, 0
    for k, n in enumerate(rows):
        total += n
        if total >= per_part:
            chunks.append((first, k + 1))
            first, total = k + 1, 0
    if first < len(rows):
        chunks.append((first, len(rows)))
    return chunks
