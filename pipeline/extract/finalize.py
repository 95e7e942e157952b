"""Extract's step across parts: each image and each document kept once (the first occurrence in part order
wins), decided per key bucket in tasks, so that no process holds every id of the collection.

Inputs: the finished parts of ``RUN/extract`` (``images``, ``documents``, ``groups``, ``drops``).
Outputs: the same parts with later copies removed (a repeated document also loses its groups and gets a
``duplicate_document`` drop row), and the counts removed.

Three rounds of tasks, each over a bounded slice, with files under ``extract/_finalize/`` in between:

1. map, per chunk of parts: the keys of each part with their part index and their 2-hex-digit prefix,
   sorted by prefix (one file per chunk and kind);
2. reduce, per range of prefixes: every (key, part) of the range from all map files; a key's first part
   keeps it, every other (key, part) is a repeat (one file per range and kind, sorted by part);
3. apply, per chunk of parts: the repeats of those parts, removed from their files.

Ids are sha256 hex, so prefixes spread evenly. Memory per task: a chunk's keys (map, apply) or the keys of
one prefix range (reduce: about ``total keys / ranges``). The driver only submits tasks and collects
counts and the descriptions of the files rewritten. Tasks run on Ray when the stage's parts did (Ray is
initialised in this process) and there is more than one chunk of parts, else here, one after the other:
the stage's actors are gone by then, and new task workers took ~2.7 s to start for 4 parts' worth of
work that takes a fraction of a second here. Idempotent: a killed finalize runs again
from the parts as they are (a part already rewritten has no repeat left, and drop rows are not doubled);
drops are rewritten before groups and documents, so a document removed is always already in drops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import record_write, write_parquet_atomic
from manifests.schemas import DROPS
from manifests.storage import AnyPath, Written, children, parquet_dataset, read_parquet, remove
from manifests.tables import part_files
from pipeline.ray_env import run_tasks

WORK_DIR = "_finalize"
KEYS = {"images": "image_id", "documents": "doc_id"}
PARTS_PER_TASK = 256  # parts per map and apply task
PARTS_PER_RANGE = 64  # one prefix range per this many parts, up to PREFIXES ranges
PREFIXES = 256  # two hex digits


def _part_index(path: str) -> int:
    """The part index in a part file's path or name (``.../part-00012.parquet`` -> 12)."""
    return int(path.rsplit("/", 1)[-1].removeprefix("part-").removesuffix(".parquet"))


def map_keys(stage_dir: AnyPath, kind: str, chunk: int, paths: list[str]) -> int:
    """Keys of the parts ``paths`` of table ``kind`` with their part, sorted by prefix, in one file."""
    tables = []
    for path in paths:
        keys = read_parquet(path, columns=[KEYS[kind]]).column(0)
        part = pa.array([_part_index(path)] * len(keys), pa.int32())
        tables.append(pa.table({"prefix": pc.utf8_slice_codeunits(keys, 0, 2), "key": keys, "part": part}))
    schema = pa.schema([("prefix", pa.string()), ("key", pa.string()), ("part", pa.int32())])
    table = pa.concat_tables([schema.empty_table(), *tables]).sort_by("prefix")
    write_parquet_atomic(table, stage_dir / WORK_DIR / "map" / f"{kind}-{chunk:06d}.parquet")
    return len(table)


def reduce_keys(stage_dir: AnyPath, kind: str, index: int, lo: str, hi: str) -> int:
    """Repeats among the keys with a prefix in [lo, hi): every (key, part) but the key's first part."""
    files = [f for f in _listing(stage_dir / WORK_DIR / "map") if f.name.startswith(f"{kind}-")]
    if not files:
        return 0
    wanted = (pc.field("prefix") >= lo) & (pc.field("prefix") < hi)
    table = parquet_dataset(files).to_table(columns=["key", "part"], filter=wanted)
    first = table.group_by("key").aggregate([("part", "min")])
    joined = table.join(first, "key")
    repeats = joined.filter(pc.not_equal(joined.column("part"), joined.column("part_min")))
    repeats = repeats.select(["part", "key"]).sort_by([("part", "ascending"), ("key", "ascending")])
    write_parquet_atomic(repeats, stage_dir / WORK_DIR / "repeats" / f"{kind}-{index:06d}.parquet")
    return len(repeats)


def apply_repeats(stage_dir: AnyPath, first: int, last: int) -> dict[str, Written]:
    """Remove the repeats of parts ``first..last`` from their files; the descriptions of files written."""
    repeats: dict[str, dict[int, list[str]]] = {}
    for kind in KEYS:
        files = [f for f in _listing(stage_dir / WORK_DIR / "repeats") if f.name.startswith(f"{kind}-")]
        in_range = (pc.field("part") >= first) & (pc.field("part") <= last)
        if not files:
            repeats[kind] = {}
            continue
        table = parquet_dataset(files).to_table(filter=in_range)
        found: dict[int, list[str]] = {}
        for part, key in zip(table.column("part").to_pylist(), table.column("key").to_pylist(), strict=True):
            found.setdefault(part, []).append(key)
        repeats[kind] = found
    written: dict[str, Written] = {}
    for part in sorted(set(repeats["images"]) | set(repeats["documents"])):
        name = f"part-{part:05d}.parquet"
        if part in repeats["images"]:
            _remove_keys(stage_dir / "images" / name, "image_id", repeats["images"][part], written)
        if part in repeats["documents"]:
            _remove_documents(stage_dir, name, sorted(repeats["documents"][part]), written)
    return written


def _remove_keys(path: AnyPath, column: str, keys: list[str], written: dict[str, Written]) -> None:
    data = read_parquet(path)
    keep = pc.invert(pc.is_in(data.column(column), value_set=pa.array(keys, pa.string())))
    written[str(path)] = write_parquet_atomic(data.filter(keep), path)


def _remove_documents(stage_dir: AnyPath, name: str, doc_ids: list[str], written: dict[str, Written]) -> None:
    drops_path = stage_dir / "drops" / name
    drops = read_parquet(drops_path)
    is_duplicate = pc.equal(drops.column("reason"), str(DropReason.DUPLICATE_DOCUMENT))
    already = set(pc.filter(drops.column("id"), is_duplicate).to_pylist())
    rows = [
        drop_row(d, DropKind.DOCUMENT, DropReason.DUPLICATE_DOCUMENT, "source seen in an earlier part")
        for d in doc_ids
        if d not in already
    ]
    if rows:
        table = pa.concat_tables([drops, pa.Table.from_pylist(rows, schema=DROPS)])
        written[str(drops_path)] = write_parquet_atomic(table, drops_path)
    for table_name in ("groups", "documents"):
        _remove_keys(stage_dir / table_name / name, "doc_id", doc_ids, written)


def _listing(folder: AnyPath) -> list[AnyPath]:
    return sorted(children(folder), key=str)


def _run_tasks(fn: Callable[..., Any], calls: list[tuple[Any, ...]], on_ray: bool) -> list[Any]:
    """``ray_env.run_tasks``, or here in order when the run is too small to be worth starting workers."""
    return run_tasks(fn, calls) if on_ray else [fn(*args) for args in calls]


def prefix_ranges(n_parts: int) -> list[tuple[str, str]]:
    """Contiguous prefix ranges, about one per ``PARTS_PER_RANGE`` parts (one range per prefix at most)."""
    n = max(1, min(PREFIXES, n_parts // PARTS_PER_RANGE))
    bounds = [PREFIXES * k // n for k in range(n + 1)]
    return [(f"{bounds[k]:02x}", f"{bounds[k + 1]:02x}" if k + 1 < n else "~") for k in range(n)]


def finalize_extract(stage_dir: AnyPath) -> dict[str, int]:
    """Keep the first occurrence of each image and document across parts; returns the counts removed."""
    run, stage = stage_dir.parent, stage_dir.name
    remove(stage_dir / WORK_DIR)  # what a killed finalize left: computed again from the parts
    files = {kind: [str(p) for p in part_files(run, stage, kind)] for kind in KEYS}
    n_parts = max(len(f) for f in files.values())
    on_ray = n_parts > PARTS_PER_TASK
    maps = [
        (stage_dir, kind, c, paths[start : start + PARTS_PER_TASK])
        for kind, paths in files.items()
        for c, start in enumerate(range(0, len(paths), PARTS_PER_TASK))
    ]
    _run_tasks(map_keys, maps, on_ray)
    ranges = prefix_ranges(n_parts)
    reduces = [(stage_dir, kind, index, lo, hi) for kind in KEYS for index, (lo, hi) in enumerate(ranges)]
    removed = dict.fromkeys(KEYS, 0)
    for (_, kind, *_), count in zip(reduces, _run_tasks(reduce_keys, reduces, on_ray), strict=True):
        removed[kind] += count
    indices = sorted({_part_index(p) for p in files["documents"]})
    applies = [
        (stage_dir, chunk[0], chunk[-1])
        for chunk in (indices[s : s + PARTS_PER_TASK] for s in range(0, len(indices), PARTS_PER_TASK))
    ]
    for written in _run_tasks(apply_repeats, applies, on_ray):
        for path, description in written.items():
            record_write(path, description)  # tasks ran elsewhere: their writes go into this journal
    remove(stage_dir / WORK_DIR)
    return {"cross_part_repeats": removed["images"], "repeated_documents": removed["documents"]}


__all__ = ["finalize_extract", "prefix_ranges"]
