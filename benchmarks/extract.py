"""Images/s through ``gdt extract`` against the bare decode + hash loop over the same files in one process.

Two corpora: the sample corpus, and one with the traits of a documentation site (``doc_corpus.py``: icons
below ``min_side``, figures shared by every translation of a page, PNG screenshots). The sample corpus is
replicated (copies of every document under new URLs) so that the run lasts long
enough for the throughput, not the one-off start of the Ray Data workers (~2 s, reported apart), to
dominate. Both sides do the same decodes: one per distinct reference per part, as the stage does.
Goal (issue 2): the stage reaches at least 0.5 x (bare rate x cores it uses).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import doc_corpus
from benchmarks.common import write_result
from manifests.config import RuntimeConfig
from manifests.ledger import PARTS_DIR
from pipeline.extract.config import ExtractConfig
from pipeline.extract.decode import decode_image
from pipeline.extract.document import ImageRef
from pipeline.extract.readers import plan_parts, read_part
from pipeline.extract.stage import ExtractStage
from pipeline.runner import run_stage
from pipeline.sample_corpus import build

COPIES = 48  # ~16 s of stage time on 2 cores
DOC_PAGES = 40  # x 26 translations: 1,040 documents


def replicate(corpus: Path, copies: int) -> Path:
    table = pq.read_table(corpus / "documents.parquet")
    tables = []
    for copy in range(copies):
        general = [json.dumps({**json.loads(g), "url": f"{json.loads(g)['url']}?copy={copy}"}) for g in
                   table.column("general_metadata").to_pylist()]  # fmt: skip
        tables.append(table.set_column(table.schema.get_field_index("general_metadata"), "general_metadata",
                                       pa.array(general)))  # fmt: skip
    out = corpus / "replicated.parquet"
    pq.write_table(pa.concat_tables(tables), out, row_group_size=64)
    return out


def work_units(path: Path, cfg: ExtractConfig) -> list[Path]:
    """The files the stage decodes: each distinct local reference once per part."""
    units = []
    for spec in plan_parts(path, "obelics", cfg.docs_per_part):
        refs = {item.ref for doc in read_part(spec) for item in doc.items if isinstance(item, ImageRef)}
        units.extend(path.parent / ref for ref in sorted(refs) if not ref.startswith("data:"))
    return [u for u in units if u.exists()]


def bare_loop(files: list[Path], cfg: ExtractConfig) -> float:
    started = time.perf_counter()
    for file in files:
        decode_image(file.read_bytes(), cfg)
    return len(files) / (time.perf_counter() - started)


def measure(documents: Path, run: Path, runtime: RuntimeConfig) -> dict:
    """Bare loop and stage over the same decodes; the stage with Ray already started."""
    cfg = ExtractConfig(input=str(documents))
    files = work_units(documents, cfg)
    bare = bare_loop(files, cfg)
    distinct = sorted(set(files))
    bare_distinct_seconds = len(distinct) / bare_loop(distinct, cfg)
    started, wall_started = time.perf_counter(), time.time()
    result = run_stage(ExtractStage(), cfg, run, runtime, quiet=True)
    seconds = time.perf_counter() - started
    first_part = min(m.stat().st_mtime for m in (run / "extract" / PARTS_DIR).glob("*.json"))
    return {
        "files": len(files),
        "bare": bare,
        "seconds": seconds,
        "stage": len(files) / seconds,
        "first_part": first_part - wall_started,
        "distinct": len(distinct),
        "least_seconds": bare_distinct_seconds,
        "manifest": result.manifest,
    }


def main(argv: list[str] | None = None) -> str:
    import ray

    from pipeline.ray_env import ensure_ray

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        sample = replicate(build(Path(tmp) / "corpus"), COPIES)
        docs = doc_corpus.build(Path(tmp) / "docs", DOC_PAGES)
        runtime = RuntimeConfig(num_cpus=cores)
        ray_started = time.perf_counter()
        ensure_ray(runtime)
        ray_seconds = time.perf_counter() - ray_started
        results = {
            "sample": measure(sample, Path(tmp) / "run-sample", runtime),
            "docs": measure(docs, Path(tmp) / "run-docs", runtime),
        }
        load = os.getloadavg()[0]
        ray.shutdown()
    rows, notes = [], []
    for name, label in (("sample", f"sample corpus x{COPIES}"), ("docs", "documentation corpus")):
        r = results[name]
        m = r["manifest"]
        rows.append(
            f"| {label} | {m.counts_in['documents']:,} | {m.counts_in['references']:,} | {r['files']:,} "
            f"| {r['bare']:,.0f} | {r['stage']:,.0f} | {r['files'] / (r['seconds'] + ray_seconds):,.0f} "
            f"| **{r['stage'] / (r['bare'] * cores):.2f}** | {r['distinct']:,} "
            f"| {r['least_seconds'] / cores / r['seconds']:.2f} |"
        )
        dropped = ", ".join(f"{k} {v:,}" for k, v in m.dropped.items()) or "none"
        notes.append(
            f"{label}: stage {r['seconds']:.1f} s, first part done {r['first_part']:.1f} s after the start, "
            f"{m.counts_out['images']:,} images kept; drops: {dropped}."
        )
    body = f"""
Images/s = decodes per second, one decode per distinct file per part (what the stage does), for the
bare decode + sha256 + pHash loop in one process and for `gdt extract` on {cores} cores (Ray started
beforehand; then including its {ray_seconds:.1f} s start-up). Ratio = stage / (bare x {cores} cores), goal
>= 0.5. The documentation corpus (`benchmarks/doc_corpus.py`): {DOC_PAGES} pages x
{doc_corpus.LANGUAGES} translations sharing their {doc_corpus.FIGURES_PER_PAGE} PNG screenshots per page
(1024x640; palette, RGBA and RGB), {doc_corpus.ICONS_PER_PAGE} toolbar icons below `min_side` per page.
The stage keeps decode results of local files per worker (`extract.decode_cache_mb`), so it decodes
fewer than the per-part count when parts share files; "ratio, distinct" is the strict one: the time
to decode every distinct file once on {cores} cores (the least any extractor must do) over the stage's
time. Load average when measured: {load:.1f} (the machine's cores are shared: figures are noisy).

| corpus | docs | refs | decodes | bare/s | stage/s | with Ray start | ratio | distinct | ratio, distinct |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{chr(10).join(notes)}
"""
    return write_result("extract", "extract: images/s against the bare decode loop", body)


if __name__ == "__main__":
    main()
