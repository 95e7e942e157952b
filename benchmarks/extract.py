"""Images/s through ``gdt extract`` against the bare decode + hash loop over the same files in one process.

The sample corpus is replicated (copies of every document under new URLs) so that the run lasts long
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


def main(argv: list[str] | None = None) -> str:
    import ray

    from pipeline.ray_env import ensure_ray

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build(Path(tmp) / "corpus")
        documents = replicate(corpus, COPIES)
        cfg = ExtractConfig(input=str(documents))
        files = work_units(documents, cfg)
        bare = bare_loop(files, cfg)

        runtime = RuntimeConfig(num_cpus=cores)
        ray_started = time.perf_counter()
        ensure_ray(runtime)
        ray_seconds = time.perf_counter() - ray_started
        started, wall_started = time.perf_counter(), time.time()
        result = run_stage(ExtractStage(), cfg, Path(tmp) / "run", runtime, quiet=True)
        seconds = time.perf_counter() - started
        first_part = min(
            m.stat().st_mtime for m in (Path(tmp) / "run" / "extract" / PARTS_DIR).glob("*.json")
        )
        first_part_seconds = first_part - wall_started
        ray.shutdown()
    stage_rate = len(files) / seconds
    cold_rate = len(files) / (seconds + ray_seconds)
    refs = result.manifest.counts_in["references"]
    body = f"""
Sample corpus x{COPIES} ({result.manifest.counts_in["documents"]:,} documents, {refs:,} references,
{len(files):,} decodes: one per distinct file per part). Images/s = decodes per second.

| what | images/s |
|---|---|
| bare decode + sha256 + pHash loop, 1 process | {bare:,.0f} |
| `gdt extract` on {cores} cores (Ray started beforehand) | {stage_rate:,.0f} |
| `gdt extract` including Ray start-up ({ray_seconds:.1f} s) | {cold_rate:,.0f} |

The stage ran {seconds:.1f} s; its first part finished {first_part_seconds:.1f} s after the start (worker
start-up plus one part of {len(files) / result.manifest.parts["total"]:.0f} decodes).

Ratio stage / (bare x {cores} cores): **{stage_rate / (bare * cores):.2f}** (goal >= 0.5).
"""
    return write_result("extract", "extract: images/s against the bare decode loop", body)


if __name__ == "__main__":
    main()
