"""The shard stage: which groups are kept, round trip through the tars, cutting, splitting, resize, skip."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from manifests.schemas import CAPTIONS, IMAGES
from pipeline.errors import UserError
from pipeline.shard import command
from pipeline.shard.config import ShardConfig
from pipeline.shard.plan import split_of
from pipeline.shard.verify import verify_shards
from pipeline.shard.writer import GroupShardWriter
from tests.page_cache import require_droppable_pages, resident_fraction
from tests.pipeline.shard_inputs import build_run, run_shard


def read_shards(out_dir: Path) -> dict[str, list[dict]]:
    """Every sample of every tar, read with plain tarfile: {shard: [{key, json, images: [bytes]}]}."""
    shards = {}
    for path in sorted(out_dir.glob("*.tar")):
        samples: list[dict] = []
        with tarfile.open(path) as tar:
            for member in tar:
                key, _, suffix = member.name.partition(".")
                if not samples or samples[-1]["key"] != key:
                    samples.append({"key": key, "images": {}})
                data = tar.extractfile(member).read()
                if suffix == "json":
                    samples[-1]["json"] = json.loads(data)
                else:
                    samples[-1]["images"][int(suffix.partition(".")[0])] = data
        for s in samples:
            s["images"] = [s["images"][i] for i in range(len(s["images"]))]
        shards[path.name] = samples
    return shards


@pytest.fixture
def run(tmp_path: Path):
    run = tmp_path / "run"
    return run, build_run(run)


def test_kept_groups_are_latest_groups_minus_every_group_drop(run):
    run, inputs = run
    result = run_shard(run, ShardConfig(target_mb=0.04))
    index = pq.read_table(run / "shard" / "index.parquet")
    assert sorted(index.column("group_id").to_pylist()) == sorted(inputs.kept)
    assert len(inputs.kept) < len(inputs.groups)
    assert result.manifest.extra["groups_from"] == "dedup"


def test_round_trip_every_kept_group_once_with_identical_bytes_order_and_captions(run):
    run, inputs = run
    result = run_shard(run, ShardConfig(target_mb=0.04, val_fraction=0.3))
    shards = read_shards(run / "shard")
    assert len(shards) >= 4
    seen = Counter(s["key"] for samples in shards.values() for s in samples)
    assert set(seen) == inputs.kept and set(seen.values()) == {1}
    docs = {"train": set(), "val": set()}
    for name, samples in shards.items():
        for sample in samples:
            group, meta = inputs.groups[sample["key"]], sample["json"]
            assert sample["images"] == [inputs.images[i] for i in group["image_ids"]]
            assert meta["captions"] == inputs.captions[sample["key"]]
            assert meta["n"] == len(group["image_ids"]) and meta["template"] == "books@1#abc"
            assert meta["positions"] == group["positions"] and meta["doc_id"] == group["doc_id"]
            assert meta["score"] is not None and meta["category"] is None
            assert meta["kind"] == "font" and meta["identity"] == {"font_name": f"face of {sample['key']}"}
            docs[name.split("-")[0]].add(meta["doc_id"])
    assert docs["train"] and docs["val"] and not docs["train"] & docs["val"]
    for output in result.manifest.outputs:
        if output.path.endswith(".tar"):
            assert hashlib.sha256((run / "shard" / output.path).read_bytes()).hexdigest() == output.sha256


def test_tars_leave_the_page_cache_once_written_and_the_index_stays(run):
    """Trainers read the tars, later and elsewhere: keeping their pages only pushes out what this machine
    reads (the index is read back by ``gdt shard verify`` and the report)."""
    run, _ = run
    require_droppable_pages(run)
    run_shard(run, ShardConfig(target_mb=0.04))
    tars = sorted((run / "shard").glob("*.tar"))
    assert tars and all(resident_fraction(tar) == 0 for tar in tars)
    assert resident_fraction(run / "shard" / "index.parquet") == 1


def test_index_offsets_point_at_each_sample(run):
    run, inputs = run
    run_shard(run, ShardConfig(target_mb=0.04, val_fraction=0.3))
    index = pq.read_table(run / "shard" / "index.parquet").to_pylist()
    assert {r["group_id"] for r in index} == inputs.kept
    for row in index:
        with open(run / "shard" / row["shard"], "rb") as fh:
            fh.seek(row["offset"])
            chunk = fh.read(row["bytes"])
        with tarfile.open(fileobj=io.BytesIO(chunk + b"\0" * 1024)) as tar:
            names = tar.getnames()
        assert names[0] == f"{row['group_id']}.json" and len(names) == 1 + row["n"]


def test_without_captions_the_template_is_none_and_captions_are_empty(tmp_path):
    run = tmp_path / "run"
    inputs = build_run(run, captions=False)
    result = run_shard(run, ShardConfig())
    samples = [s for v in read_shards(run / "shard").values() for s in v]
    assert {s["key"] for s in samples} == inputs.kept
    for s in samples:
        assert s["json"]["template"] == "none" and s["json"]["group_caption"] == ""
        assert s["json"]["captions"] == [""] * s["json"]["n"]
        assert s["json"]["kind"] is None and s["json"]["identity"] == {}
    assert result.manifest.extra["uncaptioned"] == len(inputs.kept)


def test_caption_count_mismatch_is_dropped_with_a_reason(run):
    run, _ = run
    captions = pq.read_table(run / "caption" / "captions").to_pylist()
    bad = captions[0]["group_id"]
    captions[0]["captions"] = captions[0]["captions"][:1]
    pq.write_table(
        pa.Table.from_pylist(captions, schema=CAPTIONS), run / "caption/captions/part-00000.parquet"
    )
    result = run_shard(run, ShardConfig())
    drops = pq.read_table(run / "shard" / "drops").to_pylist()
    assert [(d["id"], d["reason"]) for d in drops] == [(bad, "caption_failed")]
    assert result.manifest.dropped == {"caption_failed": 1}
    assert bad not in {s["key"] for v in read_shards(run / "shard").values() for s in v}


def test_cut_by_groups_per_shard(run):
    run, _ = run
    run_shard(run, ShardConfig(target_mb=None, groups_per_shard=3, val_fraction=0.3))
    sizes = {name: len(samples) for name, samples in read_shards(run / "shard").items()}
    for split in ("train", "val"):
        counts = [n for name, n in sorted(sizes.items()) if name.startswith(split)]
        assert counts[:-1] == [3] * (len(counts) - 1) and 1 <= counts[-1] <= 3


def shard_rows(run: Path) -> dict[str, list[list[dict]]]:
    """The index rows of each split, shard by shard, in write order (index.parquet is in shard order)."""
    splits: dict[str, list[list[dict]]] = {"train": [], "val": []}
    for row in pq.read_table(run / "shard" / "index.parquet").to_pylist():
        shards = splits[row["shard"].split("-")[0]]
        if not shards or shards[-1][0]["shard"] != row["shard"]:
            shards.append([])
        shards[-1].append(row)
    return splits


def test_cut_by_size_starts_a_shard_each_time_the_split_passes_a_multiple_of_target(run):
    run, _ = run
    target = int(0.03 * 1024**2)
    run_shard(run, ShardConfig(target_mb=0.03, val_fraction=0.3))
    splits = shard_rows(run)
    assert len(splits["train"]) > 3
    for shards in splits.values():
        start, slots = 0, []
        for shard in shards:
            # a group belongs to the shard of the target-sized slot its first byte falls in
            shard_slots = set()
            for row in shard:
                shard_slots.add(start // target)
                start += row["bytes"]
            assert len(shard_slots) == 1
            slots += shard_slots
            assert sum(r["bytes"] for r in shard[:-1]) < target  # so at most target plus its last group
        assert slots == sorted(set(slots))
    for split, shards in splits.items():
        assert [shard[0]["shard"] for shard in shards] == [f"{split}-{k:06d}.tar" for k in range(len(shards))]


def test_with_both_limits_a_shard_ends_at_whichever_comes_first(run):
    run, _ = run
    target = int(0.03 * 1024**2)
    run_shard(run, ShardConfig(target_mb=0.03, groups_per_shard=2, val_fraction=0.3))
    ended_by = Counter()
    for shards in shard_rows(run).values():
        start = rank = 0
        previous = None
        for shard in shards:
            keys = set()
            for row in shard:
                keys.add((start // target, rank // 2))  # (size slot, count slot) of the group
                start, rank = start + row["bytes"], rank + 1
            assert len(keys) == 1 and len(shard) <= 2
            (key,) = keys
            if previous is not None:
                ended_by["size" if key[0] != previous[0] else "count"] += 1
            previous = key
    assert ended_by["size"] and ended_by["count"]


def test_split_is_stable_by_document_and_the_seed_only_changes_order(tmp_path):
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        build_run(run)
        run_shard(run, ShardConfig(seed=seed, groups_per_shard=4, val_fraction=0.3))
        runs.append(read_shards(run / "shard"))
    splits = [
        {
            split: {s["key"] for n, v in shards.items() if n.startswith(split) for s in v}
            for split in ("train", "val")
        }
        for shards in runs
    ]
    assert splits[0] == splits[1]
    orders = [[s["key"] for v in shards.values() for s in v] for shards in runs]
    assert orders[0] != orders[1]
    assert split_of("doc-a", 0.0) == "train" and split_of("doc-a", 1.0) == "val"


def test_resize_reencodes_only_images_over_max_side(tmp_path):
    run = tmp_path / "run"
    inputs = build_run(run, side=64)
    run_shard(run, ShardConfig(max_side=70, reencode_format="PNG"))
    unchanged = resized = 0
    for samples in read_shards(run / "shard").values():
        for s in samples:
            for i, (data, image_id) in enumerate(
                zip(s["images"], inputs.groups[s["key"]]["image_ids"], strict=True)
            ):
                with Image.open(io.BytesIO(data)) as image:
                    assert max(image.size) <= 70 and list(image.size) == s["json"]["image_sizes"][i]
                    if data == inputs.images[image_id]:
                        unchanged += 1
                    else:
                        assert image.format == "PNG"
                        resized += 1
    assert unchanged and resized


def test_second_run_is_up_to_date_and_a_new_config_replaces_the_set(run):
    run, _ = run
    first = run_shard(run, ShardConfig(groups_per_shard=2, target_mb=None))
    assert not first.skipped and first.parts_run == list(range(first.manifest.parts["total"]))
    assert run_shard(run, ShardConfig(groups_per_shard=2, target_mb=None)).skipped
    second = run_shard(run, ShardConfig(groups_per_shard=5, target_mb=None))
    names = sorted(p.name for p in (run / "shard").glob("*.tar"))
    assert names == sorted(second.manifest.extra["shards"]) and len(names) < len(
        first.manifest.extra["shards"]
    )


def test_a_group_whose_image_is_missing_is_a_clear_error(run):
    run, _ = run
    images = run / "extract" / "images"
    sorted(images.glob("part-*.parquet"))[-1].unlink()
    with pytest.raises(UserError, match="missing from extract/images"):
        run_shard(run, ShardConfig())


def test_config_needs_a_way_to_cut():
    with pytest.raises(ValueError, match="target_mb"):
        ShardConfig(target_mb=None, groups_per_shard=None)


def test_writer_output_is_what_tarfile_writes_and_lands_only_on_commit(tmp_path):
    members = [("g-0-2.json", b'{"n": 2}'), ("g-0-2.0.jpg", b"x" * 700), ("g-0-2.1.png", b"y" * 512)]
    writer = GroupShardWriter(tmp_path / "train-000000.tar")
    assert writer.add(members) == (0, 3 * 512 + 512 + 1024 + 512)
    assert not (tmp_path / "train-000000.tar").exists()
    size = writer.commit()
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    assert (tmp_path / "train-000000.tar").read_bytes() == expected.getvalue()
    assert size == len(expected.getvalue())
    assert [p.name for p in tmp_path.iterdir()] == ["train-000000.tar"]


def test_command_writes_with_overrides_prints_a_summary_and_fails_clearly_without_groups(
    run, tmp_path, capsys
):
    run, inputs = run
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    local = ["--set", "runtime.executor=local"]
    args = parser.parse_args(
        ["shard", "--run", str(run), "--set", "groups_per_shard=2", "--set", "target_mb=null", *local]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "shard: done" in out and "dedup/groups" in out and "caption/captions" in out
    index = pq.read_table(run / "shard" / "index.parquet")
    assert set(index.column("group_id").to_pylist()) == inputs.kept
    assert max(Counter(index.column("shard").to_pylist()).values()) == 2
    empty = parser.parse_args(["shard", "--run", str(tmp_path / "empty"), *local])
    with pytest.raises(UserError, match="no groups table"):
        empty.func(empty)


def test_an_image_that_fails_to_reencode_drops_its_group_and_an_emptied_shard_is_not_written(run):
    run, inputs = run
    victim = sorted(inputs.kept)[0]
    bad_id = inputs.groups[victim]["image_ids"][1]
    for path in sorted((run / "extract" / "images").glob("part-*.parquet")):
        rows = pq.read_table(path).to_pylist()
        for row in rows:
            if row["image_id"] == bad_id:
                row["bytes"] = row["bytes"][:40]  # a truncated image
        pq.write_table(pa.Table.from_pylist(rows, schema=IMAGES), path)
    result = run_shard(run, ShardConfig(groups_per_shard=1, target_mb=None, max_side=32))
    drops = pq.read_table(run / "shard" / "drops").to_pylist()
    assert [(d["id"], d["reason"]) for d in drops] == [(victim, "decode_error")]
    assert "image 1" in drops[0]["detail"]
    tars = sorted(p.name for p in (run / "shard").glob("*.tar"))
    assert len(tars) == len(inputs.kept) - 1 == len(result.manifest.extra["shards"])
    assert result.manifest.parts["total"] == len(inputs.kept)
    assert result.manifest.dropped == {"decode_error": 1}
    assert victim not in {s["key"] for v in read_shards(run / "shard").values() for s in v}
    assert verify_shards(run / "shard").ok
    assert run_shard(run, ShardConfig(groups_per_shard=1, target_mb=None, max_side=32)).skipped


def test_an_unfinished_upstream_stage_is_a_clear_error_and_a_rerun_upstream_reshards(run):
    run, _ = run
    cfg = ShardConfig(groups_per_shard=2, target_mb=None)
    first = run_shard(run, cfg)
    assert {i.path for i in first.manifest.inputs} == {"extract", "classify", "dedup", "caption"}
    manifest = (run / "dedup" / "_manifest.json").read_text()
    (run / "dedup" / "_manifest.json").unlink()
    with pytest.raises(UserError, match=r"dedup.* did not finish"):
        run_shard(run, cfg)
    (run / "dedup" / "_manifest.json").write_text(manifest.replace('"fixture"', '"another"'))
    again = run_shard(run, cfg)
    assert not again.skipped and again.manifest.parts["resumed"] == 0
