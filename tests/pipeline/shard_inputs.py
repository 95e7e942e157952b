"""A small run folder for the shard tests: real images (scikit-image crops) in tables of the shared schemas.

``build_run`` writes ``extract/{images,groups}``, and optionally ``classify/{scores,drops}``,
``dedup/{groups,drops}`` and ``caption/{captions,drops}``, each stage folder with its manifest (as a
finished stage leaves it), and returns what the shard stage should keep. ``run_shard`` runs the stage
through the runner, in this process unless a runtime is given.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from skimage import data as skdata

from manifests.config import RuntimeConfig
from manifests.drops import DropKind, DropReason, drop_row, drops_table
from manifests.ledger import commit_external
from manifests.schemas import CAPTIONS, GROUPS, IMAGES, SCORES
from pipeline.runner import run_stage
from pipeline.shard.config import ShardConfig
from pipeline.shard.stage import ShardStage
from pipeline.stage import StageResult

LOCAL = RuntimeConfig(executor="local")

SOURCES = ("astronaut", "camera", "chelsea", "coffee", "horse", "moon", "rocket", "page")


@dataclass
class RunInputs:
    images: dict[str, bytes] = field(default_factory=dict)  # image_id -> stored bytes
    groups: dict[str, dict] = field(default_factory=dict)  # every candidate group, by id
    kept: set[str] = field(default_factory=set)
    captions: dict[str, list[str]] = field(default_factory=dict)


def _images(count: int, side: int) -> list[tuple[bytes, str, int, int]]:
    """Distinct small crops of real images, alternately JPEG and PNG, some not square."""
    out = []
    for k in range(count):
        array = getattr(skdata, SOURCES[k % len(SOURCES)])()
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        h, w = array.shape[:2]
        y, x = (k * 37) % (h // 2), (k * 53) % (w // 2)
        crop = Image.fromarray(array[y : y + h // 2, x : x + w // 2, :3].astype(np.uint8))
        crop = crop.resize((side + (k % 3) * 16, side))
        fmt = "JPEG" if k % 2 == 0 else "PNG"
        buf = io.BytesIO()
        crop.save(buf, format=fmt, quality=90)
        out.append((buf.getvalue(), fmt, crop.width, crop.height))
    return out


def _write(table: pa.Table, run: Path, stage: str, name: str, parts: int = 1, row_group: int = 1024) -> None:
    folder = run / stage / name
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // parts) if table.num_rows else 1
    for p in range(parts):
        pq.write_table(
            table.slice(p * step, step), folder / f"part-{p:05d}.parquet", row_group_size=row_group
        )


def run_shard(
    run: Path, cfg: ShardConfig, runtime: RuntimeConfig = LOCAL, force: bool = False
) -> StageResult:
    return run_stage(ShardStage(), cfg, run, runtime, force=force, quiet=True)


def finish(run: Path, stage: str) -> None:
    """The manifest a finished stage leaves: its outputs with their checksums."""
    commit_external(run / stage, version="fixture")


def build_run(
    run: Path,
    docs: int = 12,
    side: int = 64,
    classify: bool = True,
    dedup: bool = True,
    captions: bool = True,
) -> RunInputs:
    out = RunInputs()
    images = _images(docs * 4, side)
    rows = []
    for data, fmt, width, height in images:
        image_id = hashlib.sha256(data).hexdigest()
        phash = int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)
        rows.append(dict(image_id=image_id, bytes=data, width=width, height=height, format=fmt, phash=phash))
        rows[-1]["source"] = f"img-{len(rows)}.{fmt.lower()}"
        out.images[image_id] = data
    _write(pa.Table.from_pylist(rows, schema=IMAGES), run, "extract", "images", parts=2, row_group=5)

    ids = list(out.images)
    groups = []
    for d in range(docs):
        source = f"https://example.org/doc-{d}.html"
        doc_id = hashlib.sha256(source.encode()).hexdigest()[:16]
        doc_images = ids[d * 4 : d * 4 + 4]
        windows = [(0, 4)] if d % 3 == 0 else [(0, 2), (2, 2)]  # one group of 4, or two of 2
        for first, n in windows:
            group_id = f"{doc_id}-{first}-{n}"
            context = [{"alt": f"alt {i}", "text_before": "before", "text_after": "after"} for i in range(n)]
            groups.append(
                dict(
                    group_id=group_id,
                    doc_id=doc_id,
                    source=source,
                    image_ids=doc_images[first : first + n],
                    positions=list(range(first, first + n)),
                    context=context,
                )
            )
    out.groups = {g["group_id"]: g for g in groups}
    out.kept = set(out.groups)
    _write(pa.Table.from_pylist(groups, schema=GROUPS), run, "extract", "groups")

    group_ids = sorted(out.groups)
    if classify:
        scores = [dict(group_id=g, score=0.5 + 0.01 * i, model="m1") for i, g in enumerate(group_ids)]
        _write(pa.Table.from_pylist(scores, schema=SCORES), run, "classify", "scores")
        low = group_ids[0]
        _write(
            drops_table([drop_row(low, DropKind.GROUP, DropReason.LOW_SCORE, "0.1")]),
            run,
            "classify",
            "drops",
        )
        out.kept.discard(low)
    if dedup:
        dup = group_ids[1]
        kept_rows = [g for g in groups if g["group_id"] != dup]
        _write(pa.Table.from_pylist(kept_rows, schema=GROUPS), run, "dedup", "groups")
        detail = f"duplicate_of={group_ids[2]}"
        _write(
            drops_table([drop_row(dup, DropKind.GROUP, DropReason.DUPLICATE_GROUP, detail)]),
            run,
            "dedup",
            "drops",
        )
        out.kept.discard(dup)
    if captions:
        failed = group_ids[3]
        rows = []
        for g in sorted(out.kept - {failed}):
            n = len(out.groups[g]["image_ids"])
            out.captions[g] = [f"caption {i} of {g} — ünïcode" for i in range(n)]
            rows.append(
                dict(
                    group_id=g,
                    captions=out.captions[g],
                    group_caption=f"group {g}",
                    template="books@1#abc",
                    backend="context",
                    model="none",
                    kind="font",
                    identity={"font_name": f"face of {g}"},
                )
            )
        _write(pa.Table.from_pylist(rows, schema=CAPTIONS), run, "caption", "captions")
        drop = drop_row(failed, DropKind.GROUP, DropReason.CAPTION_FAILED, "timeout")
        _write(drops_table([drop]), run, "caption", "drops")
        out.kept.discard(failed)
    for stage in ("extract", "classify", "dedup", "caption"):
        if (run / stage).exists():
            finish(run, stage)
    return out
