"""The shard plan's tasks: each takes a slice of the collection, so no process holds all of it.

Inputs: the current groups, captions, scores and group drops of a run and ``extract/images``. Outputs,
under ``RUN/shard/_plan/`` (``planner.py`` runs the rounds and keeps only counts):

1. map (per chunk of files): group-keyed rows (groups, captions, scores, group drops) into group buckets,
   the groups' members (image id, group, position) and the images' addresses (``images.py``) into image
   buckets, under ``map/{kind}/{bucket}/``. A group bucket is a range of shuffle keys (``plan.py``), so
   the buckets in order are the shuffle order; an image bucket is a range of a hash of the image id.
2. join (per image bucket): each member with the address of its image's first stored copy, written to
   its group's bucket (``map/addresses/``); a member whose image is not stored keeps a null address.
3. reduce (per group bucket): the kept groups (group drops removed) joined with captions, scores and
   addresses; a caption row whose length differs from its group drops the group; each kept group's
   split, shuffle key and exact sample size; written as ``rows/{split}-{bucket}.parquet`` in shuffle
   order, with the group's images' addresses (the worker of a shard needs nothing else).
4. cut (per rows file): given the bytes and groups before the file in its split, the runs of rows that
   share a shard (``plan.shard_keys``).

Memory per task: one chunk of files (map), one bucket (join, reduce), or a rows file's sizes (cut).
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifests.drops import DropKind, DropReason, drop_row, drops_table
from manifests.storage import (
    AnyPath,
    as_path,
    children,
    open_output,
    parquet_file,
    read_parquet,
    write_parquet,
)
from pipeline.shard.images import ADDRESSES, ImageInfo, file_addresses
from pipeline.shard.plan import record_of, sample_size, shard_keys, shuffle_key, split_of

PLAN_SUBDIR = "_plan"  # the plan's files, in the stage folder (not outputs: "_"-prefixed)
MAP = "map"
ROWS = "rows"
DROPS = "drops"
ROWS_PER_ROW_GROUP = 1024  # a worker reads the row groups holding its shard's rows
SPLITS = ("train", "val")

PLAN_ROWS = pa.schema(
    [
        ("skey", pa.uint64()),
        ("group_id", pa.string()),
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("image_ids", pa.list_(pa.string())),
        ("positions", pa.list_(pa.int32())),
        ("category", pa.string()),
        ("captions", pa.list_(pa.string())),  # null: the group has no caption
        ("group_caption", pa.string()),
        ("template", pa.string()),
        ("kind", pa.string()),
        ("identity", pa.map_(pa.string(), pa.string())),
        ("score", pa.float32()),
        ("size", pa.int64()),  # bytes of the sample in a tar
        ("image_files", pa.list_(pa.string())),  # each image's address, in group order
        ("image_row_groups", pa.list_(pa.int32())),
        ("image_rows", pa.list_(pa.int32())),
        ("image_lengths", pa.list_(pa.int64())),
        ("image_formats", pa.list_(pa.string())),
        ("image_widths", pa.list_(pa.int32())),
        ("image_heights", pa.list_(pa.int32())),
    ]
)
CAPTION_COLUMNS = ["captions", "group_caption", "template", "kind", "identity"]
ADDRESS_COLUMNS = ["file", "row_group", "row", "length", "format", "width", "height"]  # ImageInfo's order


def bucket_name(bucket: int) -> str:
    return f"{bucket:05d}"


def rows_file(split: str, bucket: int) -> str:
    return f"{ROWS}/{split}-{bucket_name(bucket)}.parquet"


def _slots(keys: np.ndarray, n: int) -> np.ndarray:
    """The bucket of each 64-bit key among ``n`` equal ranges of the key space (keeps the keys' order)."""
    return ((keys >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)


def _shuffle_keys(ids: pa.ChunkedArray | pa.Array, seed: int) -> np.ndarray:
    return np.array([shuffle_key(g, seed) for g in ids.to_pylist()], dtype=np.uint64)


def _image_keys(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.array(
        [int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "big") for i in ids.to_pylist()],
        dtype=np.uint64,
    )


def _write_buckets(table: pa.Table, slots: np.ndarray, n: int, folder: AnyPath, name: str) -> None:
    """Each bucket's rows of ``table`` as ``folder/{bucket}/{name}`` (empty buckets write nothing)."""
    order = np.argsort(slots, kind="stable")
    table, slots = table.take(order), slots[order]
    bounds = np.searchsorted(slots, np.arange(n + 1, dtype=np.uint64))
    for bucket in range(n):
        lo, hi = int(bounds[bucket]), int(bounds[bucket + 1])
        if hi > lo:
            write_parquet(table.slice(lo, hi - lo), folder / bucket_name(bucket) / name)


def _read_folder(folder: AnyPath, schema: pa.Schema | None = None) -> pa.Table | None:
    """Every file under ``folder`` as one table (None, or empty with ``schema``, when there is none)."""
    files = sorted(str(p) for p in children(folder) if p.name.endswith(".parquet"))
    tables = [read_parquet(f) for f in files]
    if not tables:
        return schema.empty_table() if schema is not None else None
    return pa.concat_tables(tables, promote_options="default")


def count_rows(paths: list[str]) -> list[int]:
    """Rows of each given parquet file, from its footer."""
    return [parquet_file(p).metadata.num_rows for p in paths]


# ---------------------------------------------------------------------------------------------------------
# 1. map
# ---------------------------------------------------------------------------------------------------------


def map_files(stage_dir: str, kind: str, chunk: int, paths: list[str], params: dict[str, Any]) -> None:
    """One chunk of files of one kind into buckets (see the module docstring)."""
    work, name = as_path(stage_dir) / PLAN_SUBDIR / MAP, f"{chunk:06d}.parquet"
    if kind == "images":
        addresses = pa.concat_tables(
            [ADDRESSES.empty_table()]
            + [file_addresses(p, i) for i, p in enumerate(paths, start=params["first"])]
        )
        slots = _slots(_image_keys(addresses.column("image_id")), params["image_buckets"])
        _write_buckets(addresses, slots, params["image_buckets"], work / "images", name)
        return
    tables = [read_parquet(p, columns=params.get("columns")) for p in paths]
    table = pa.concat_tables(tables, promote_options="default")
    if kind == "drops":
        is_group = pc.equal(table.column("kind"), str(DropKind.GROUP))
        table = table.filter(is_group).select(["id"]).rename_columns(["group_id"])
    keys = _shuffle_keys(table.column("group_id"), params["seed"])
    slots = _slots(keys, params["group_buckets"])
    if kind == "groups":
        table = table.append_column("skey", pa.array(keys, pa.uint64()))
        _write_members(table, slots, params["image_buckets"], work / "members", name)
    _write_buckets(table, slots, params["group_buckets"], work / kind, name)


def _write_members(groups: pa.Table, group_slots: np.ndarray, image_buckets: int, folder: AnyPath, name: str):
    lists = groups.column("image_ids").combine_chunks()
    parents = pc.list_parent_indices(lists).to_numpy()
    offsets = lists.offsets.to_numpy()
    members = pa.table(
        {
            "image_id": pc.list_flatten(lists),
            "group_id": groups.column("group_id").take(parents),
            "k": (np.arange(len(parents)) - (offsets[parents] - offsets[0])).astype(np.int32),
            "slot": group_slots[parents].astype(np.int32),
        }
    )
    slots = _slots(_image_keys(members.column("image_id")), image_buckets)
    _write_buckets(members, slots, image_buckets, folder, name)


# ---------------------------------------------------------------------------------------------------------
# 2. join members with addresses
# ---------------------------------------------------------------------------------------------------------


def join_images(stage_dir: str, bucket: int, group_buckets: int) -> None:
    """The members of one image bucket with their image's first stored copy, written by group bucket."""
    work = as_path(stage_dir) / PLAN_SUBDIR / MAP
    members = _read_folder(work / "members" / bucket_name(bucket))
    if members is None:
        return
    stored = _read_folder(work / "images" / bucket_name(bucket), ADDRESSES)
    stored = stored.sort_by([("image_id", "ascending"), ("ordinal", "ascending")])
    ids = stored.column("image_id").combine_chunks()
    first = np.ones(len(ids), dtype=bool)
    if len(ids) > 1:
        first[1:] = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
    stored = stored.filter(pa.array(first)).drop_columns(["ordinal"])
    joined = members.join(stored, "image_id", join_type="left outer")
    slots = joined.column("slot").to_numpy().astype(np.uint64)
    _write_buckets(
        joined.drop_columns(["slot"]),
        slots,
        group_buckets,
        work / "addresses",
        f"{bucket_name(bucket)}.parquet",
    )


# ---------------------------------------------------------------------------------------------------------
# 3. reduce per group bucket
# ---------------------------------------------------------------------------------------------------------


def _by_group(table: pa.Table | None, columns: list[str]) -> dict[str, dict[str, Any]]:
    if table is None:
        return {}
    present = [c for c in columns if c in table.column_names]
    return {row["group_id"]: row for row in table.select(["group_id", *present]).to_pylist()}


def _addresses(table: pa.Table | None) -> dict[str, list[dict[str, Any]]]:
    """Each group's members in position order, with their address (``file`` None: not stored)."""
    if table is None:
        return {}
    table = table.sort_by([("group_id", "ascending"), ("k", "ascending")])
    rows = table.select(["group_id", "image_id", *ADDRESS_COLUMNS]).to_pylist()
    return {gid: list(members) for gid, members in itertools.groupby(rows, key=lambda r: r["group_id"])}


def reduce_groups(
    stage_dir: str, bucket: int, seed: int, val_fraction: float, image_files: list[str]
) -> dict[str, Any]:
    """The plan rows of one group bucket (see the module docstring); returns its counts per split."""
    stage_dir_path = as_path(stage_dir)
    work, name = stage_dir_path / PLAN_SUBDIR / MAP, bucket_name(bucket)
    groups = _read_folder(work / "groups" / name)
    drops_in = _read_folder(work / "drops" / name)
    dropped = set(drops_in.column("group_id").to_pylist()) if drops_in is not None else set()
    captions = _by_group(_read_folder(work / "captions" / name), CAPTION_COLUMNS)
    scores = _by_group(_read_folder(work / "scores" / name), ["score"])
    members = _addresses(_read_folder(work / "addresses" / name))
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    drops, missing, uncaptioned = [], [], 0
    for group in groups.to_pylist() if groups is not None else []:
        gid, n = group["group_id"], len(group["image_ids"])
        if gid in dropped:
            continue
        caption = captions.get(gid)
        if caption is not None and len(caption["captions"]) != n:
            detail = f"{len(caption['captions'])} captions for {n} images"
            drops.append(drop_row(gid, DropKind.GROUP, DropReason.CAPTION_FAILED, detail))
            continue
        uncaptioned += caption is None
        images = members.get(gid, [])
        absent = [m["image_id"] for m in images if m["file"] is None]
        if absent:
            missing += absent
            continue
        row = {**group, **(caption or {}), "score": scores.get(gid, {}).get("score")}
        infos = [ImageInfo(image_files[m["file"]], *(m[c] for c in ADDRESS_COLUMNS[1:])) for m in images]
        by_id = {m["image_id"]: info for m, info in zip(images, infos, strict=True)}
        row["size"] = sample_size(record_of(row), by_id)
        row["image_files"] = [info.file for info in infos]
        for column in ADDRESS_COLUMNS[1:]:
            row[f"image_{column}s"] = [m[column] for m in images]
        rows[split_of(group["doc_id"], val_fraction)].append(row)
    facts: dict[str, Any] = {
        "uncaptioned": uncaptioned,
        "missing": sorted(missing)[:3],
        "n_missing": len(missing),
    }
    for split in SPLITS:
        ordered = sorted(rows[split], key=lambda r: (r["skey"], r["group_id"]))
        table = pa.Table.from_pylist(ordered, schema=PLAN_ROWS)
        with open_output(stage_dir_path / PLAN_SUBDIR / rows_file(split, bucket)) as out:
            pq.write_table(table, out.writer, row_group_size=ROWS_PER_ROW_GROUP, compression="zstd")
        facts[split] = {"groups": table.num_rows, "bytes": int(pc.sum(table.column("size")).as_py() or 0)}
    write_parquet(drops_table(drops), stage_dir_path / PLAN_SUBDIR / DROPS / f"{name}.parquet")
    return facts


# ---------------------------------------------------------------------------------------------------------
# 4. cut
# ---------------------------------------------------------------------------------------------------------


def cut_runs(
    stage_dir: str, split: str, bucket: int, start: int, rank: int, target: int | None, per_shard: int | None
) -> list[tuple[int, int, int, int]]:
    """Runs of rows of one rows file that share a shard: (size slot, count slot, first row, end row)."""
    sizes = read_parquet(as_path(stage_dir) / PLAN_SUBDIR / rows_file(split, bucket), columns=["size"])
    size = sizes.column("size").to_numpy().astype(np.int64)
    if not len(size):
        return []
    keys = shard_keys(start + np.cumsum(size) - size, rank + np.arange(len(size)), target, per_shard)
    changes = np.nonzero(np.any(keys[1:] != keys[:-1], axis=1))[0] + 1
    bounds = [0, *changes.tolist(), len(size)]
    return [(int(keys[lo, 0]), int(keys[lo, 1]), lo, hi) for lo, hi in itertools.pairwise(bounds)]


def read_rows(stage_dir: AnyPath, segments: tuple[tuple[str, int, int], ...]) -> list[dict[str, Any]]:
    """The plan rows of a shard: rows ``lo..hi`` of each named rows file, in order."""
    out = []
    for name, lo, hi in segments:
        parquet = parquet_file(as_path(stage_dir) / PLAN_SUBDIR / name)
        wanted, first, offset = [], None, 0
        for rg in range(parquet.num_row_groups):
            n = parquet.metadata.row_group(rg).num_rows
            if offset < hi and offset + n > lo:
                wanted.append(rg)
                first = offset if first is None else first
            offset += n
        table = parquet.read_row_groups(wanted)
        out += table.slice(lo - (first or 0), hi - lo).to_pylist()
    return out
