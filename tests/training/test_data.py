"""The group loader: every group once in evaluation, equal batches per rank in training, the contract."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from training.data import group_loader, group_transform, shard_urls

RESOLUTION = 24


def _image(k: int) -> bytes:
    array = [skdata.astronaut, skdata.chelsea, skdata.coffee, skdata.rocket][k % 4]()
    y, x = (k * 29) % 200, (k * 41) % 200
    image = Image.fromarray(array[y : y + 160, x : x + 120]).resize((40 + k % 5 * 8, 32))
    buf = io.BytesIO()
    image.save(buf, format="JPEG" if k % 2 else "PNG")
    return buf.getvalue()


def write_shards(folder: Path, sizes: list[list[int]]) -> dict[str, dict]:
    """Tars in the shard format, written here with plain tarfile; ``sizes``: the n of each group per shard."""
    folder.mkdir(parents=True, exist_ok=True)
    groups, k = {}, 0
    for s, shard in enumerate(sizes):
        with tarfile.open(folder / f"train-{s:06d}.tar", "w") as tar:
            for g, n in enumerate(shard):
                gid = f"doc{s}x{g}-0-{n}"
                images = [_image(k + i) for i in range(n)]
                k += n
                meta = {"group_id": gid, "n": n, "captions": [f"{gid} image {i}" for i in range(n)]}
                meta.update(group_caption=f"about {gid}", template="t@1", doc_id=f"doc{s}x{g}", score=0.9)
                members = [(f"{gid}.json", json.dumps(meta).encode())]
                members += [
                    (f"{gid}.{i}.{'jpg' if (k - n + i) % 2 else 'png'}", b) for i, b in enumerate(images)
                ]
                for name, payload in members:
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                groups[gid] = {"images": images, "meta": meta}
    return groups


def expected_images(images: list[bytes]) -> torch.Tensor:
    transform = group_transform(RESOLUTION)
    return torch.stack([transform(Image.open(io.BytesIO(b)).convert("RGB")) for b in images])


def test_two_workers_over_one_shard_yield_every_group_once_in_order(tmp_path):
    groups = write_shards(tmp_path, [[2, 3, 2, 2, 3, 2, 4]])
    loader = group_loader(tmp_path, batch_size=2, resolution=RESOLUTION, train=False, num_workers=2)
    seen = Counter()
    for batch in loader:
        n = batch["images"].shape[1]
        assert batch["images"].shape == (len(batch["group_id"]), n, 3, RESOLUTION, RESOLUTION)
        assert batch["images"].dtype == torch.float32
        assert batch["images"].min() >= -1.0 and batch["images"].max() <= 1.0
        for b, gid in enumerate(batch["group_id"]):
            seen[gid] += 1
            assert batch["captions"][b] == groups[gid]["meta"]["captions"]
            assert batch["meta"][b]["group_caption"] == f"about {gid}"
            assert torch.equal(batch["images"][b], expected_images(groups[gid]["images"]))
    assert seen == Counter({gid: 1 for gid in groups})


def test_evaluation_splits_shards_between_ranks_without_overlap(tmp_path):
    groups = write_shards(tmp_path, [[2, 2, 3], [2, 3], [3, 3, 3, 2]])
    per_rank = []
    for rank in range(2):
        loader = group_loader(
            tmp_path, batch_size=3, resolution=RESOLUTION, train=False, num_workers=2, rank=rank, world_size=2
        )
        per_rank.append([gid for batch in loader for gid in batch["group_id"]])
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == sorted(groups)


def test_two_ranks_get_the_same_number_of_full_batches_every_epoch(tmp_path):
    # uneven shards: 3 shards over 2 ranks, 1 to 5 groups each
    write_shards(tmp_path, [[2, 3, 2, 2, 3], [2], [3, 2, 2]])
    counts = {}
    for rank in range(2):
        loader = group_loader(
            tmp_path,
            batch_size=2,
            resolution=RESOLUTION,
            train=True,
            batches_per_epoch=6,
            num_workers=2,
            rank=rank,
            world_size=2,
            shuffle_buffer=4,
        )
        counts[rank] = []
        for _epoch in range(2):
            batches = list(loader)
            for batch in batches:
                assert batch["images"].shape[:2] == (2, batch["images"].shape[1])
                assert len(batch["captions"]) == 2
                assert all(len(c) == batch["images"].shape[1] for c in batch["captions"])
            counts[rank].append(len(batches))
    assert counts == {0: [6, 6], 1: [6, 6]}


def test_training_streams_differ_between_ranks_and_repeat_with_the_seed(tmp_path):
    write_shards(tmp_path, [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2]])

    def stream(rank: int, seed: int) -> list[str]:
        loader = group_loader(
            tmp_path, batch_size=2, resolution=8, train=True, batches_per_epoch=6, num_workers=0,
            rank=rank, world_size=2, seed=seed, shuffle_buffer=2,
        )  # fmt: skip
        return [gid for batch in loader for gid in batch["group_id"]]

    assert stream(0, seed=3) == stream(0, seed=3)
    assert stream(0, seed=3) != stream(1, seed=3)


@pytest.mark.parametrize("workers", [0, 2])
def test_each_training_epoch_draws_a_new_stream(tmp_path, workers):
    write_shards(tmp_path, [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2]])
    loader = group_loader(
        tmp_path, batch_size=2, resolution=8, train=True, batches_per_epoch=6, num_workers=workers,
        shuffle_buffer=2,
    )  # fmt: skip
    epochs = [[gid for batch in loader for gid in batch["group_id"]] for _ in range(2)]
    assert len(epochs[0]) == len(epochs[1]) == 12
    assert epochs[0] != epochs[1]


def test_max_group_size_keeps_the_first_images(tmp_path):
    groups = write_shards(tmp_path, [[4, 2]])
    loader = group_loader(
        tmp_path, batch_size=1, resolution=RESOLUTION, train=False, num_workers=0, max_group_size=3
    )
    batches = {batch["group_id"][0]: batch for batch in loader}
    big = next(gid for gid in groups if groups[gid]["meta"]["n"] == 4)
    assert batches[big]["images"].shape[1] == 3
    assert torch.equal(batches[big]["images"][0], expected_images(groups[big]["images"][:3]))
    assert batches[big]["captions"][0] == groups[big]["meta"]["captions"][:3]


def test_training_needs_an_epoch_length_and_shards(tmp_path):
    write_shards(tmp_path, [[2]])
    with pytest.raises(ValueError, match="batches_per_epoch"):
        group_loader(tmp_path, train=True)
    with pytest.raises(FileNotFoundError):
        shard_urls(tmp_path, split="val")
    assert shard_urls(str(tmp_path / "train-{000000..000000}.tar")) == [str(tmp_path / "train-000000.tar")]


@pytest.mark.integration
def test_shards_on_s3_load_the_same_groups_as_on_disk(tmp_path, s3_bucket):
    from manifests.storage import as_path

    groups = write_shards(tmp_path, [[2, 3], [2, 2]])
    remote = as_path(f"{s3_bucket}/run/shard")
    remote.fs.put(str(tmp_path), remote.path, recursive=True)
    urls = shard_urls(str(remote))
    assert urls == [f"{remote}/train-{s:06d}.tar" for s in range(2)]
    loader = group_loader(str(remote), batch_size=2, resolution=RESOLUTION, train=False, num_workers=0)
    seen = Counter()
    for batch in loader:
        for b, gid in enumerate(batch["group_id"]):
            seen[gid] += 1
            assert torch.equal(batch["images"][b], expected_images(groups[gid]["images"]))
    assert seen == Counter({gid: 1 for gid in groups})


def test_token_budget_batches_fewer_groups_of_more_images(tmp_path):
    write_shards(tmp_path, [[2, 4, 2, 4, 2, 4, 2, 4, 3, 3, 2, 2]])
    loader = group_loader(
        tmp_path, batch_size=99, resolution=8, train=False, num_workers=0, images_per_batch=8
    )
    shapes = [tuple(batch["images"].shape[:2]) for batch in loader]
    assert (4, 2) in shapes and (2, 4) in shapes, "8 images: 4 groups of 2, 2 groups of 4"
    assert all(groups * n <= 8 for groups, n in shapes)
    assert sum(groups for groups, _ in shapes) == 12, "every group once (partial batches kept)"
