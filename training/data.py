"""The group loader: webdataset shards of image groups -> batches of equal-size groups for the trainer.

A shard sample is one group: ``{group_id}.json`` (captions in image order, group_caption, template, n,
image_sizes, doc_id, source, positions, score, category) and ``{group_id}.{i}.{ext}`` per image.

Contract (the trainer is written against it): iterating a loader yields dicts
    "group_id": list[str]                      B group ids
    "images":   float32 tensor (B, n, 3, R, R) in [-1, 1], images in group order, R = resolution
    "captions": list[list[str]]                B lists of n captions, in image order
    "meta":     list[dict]                     B json records of the shard samples
where every group of a batch has the same n (groups are bucketed by n in each worker). B is
``batch_size``, or with ``images_per_batch`` (a token budget: every image of one resolution has the same
tokens) ``max(1, images_per_batch // n)``, so a batch of n = 8 is not 4x the work of one of n = 2.

Training (``train=True``): every rank and worker draws shards at random with replacement from all shards
(seeded by seed, rank and worker), and the loader yields exactly ``batches_per_epoch`` batches per epoch on
every rank, so DDP ranks never wait on one another at the end of an epoch. Evaluation (``train=False``):
shards are split by rank, then by worker, each read once; partial batches are kept, so every group comes
out exactly once per pass; a worker or rank without a shard yields nothing instead of failing.
Decoding and transforms run in the DataLoader's worker processes.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import fsspec
import torch
import webdataset as wds
from PIL import Image
from torchvision import transforms
from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

from manifests.storage import as_path, is_remote

Transform = Callable[[Image.Image], torch.Tensor]


# read through fsspec, like run folders (see manifests.storage)
STORE_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://")


def shard_urls(shards: str | Path | Sequence[str], split: str = "train") -> list[str]:
    """A shard folder (its ``{split}-*.tar``), a brace pattern (``d/train-{000000..000009}.tar``), a list.
    The folder may be on an object store: ``s3://bucket/run/shard``."""
    folder = as_path(shards) if isinstance(shards, str) and "{" not in shards else None
    if folder is not None and is_remote(folder) and not folder.name.endswith(".tar"):
        urls = sorted(f"{folder.protocol}://{p}" for p in folder.fs.glob(f"{folder.path}/{split}-*.tar"))
    elif isinstance(shards, Path) or (isinstance(shards, str) and Path(shards).is_dir()):
        urls = sorted(str(p) for p in Path(shards).glob(f"{split}-*.tar"))
    elif isinstance(shards, str):
        urls = list(wds.shardlists.expand_urls(shards))
    else:
        urls = [str(s) for s in shards]
    if not urls:
        raise FileNotFoundError(f"no {split} shards found in {shards}")
    return urls


def _open_shards(src: Iterable[dict[str, Any]], handler: Callable = wds.reraise_exception) -> Iterator[dict]:
    """webdataset's opener, except that object-store URLs are streamed through fsspec (credentials and
    endpoint from the store's standard environment, as for run folders)."""
    for sample in src:
        url = sample["url"]
        if url.startswith(STORE_SCHEMES):
            try:
                yield {**sample, "stream": fsspec.open(url, "rb", use_listings_cache=False).open()}
            except Exception as err:
                if handler(err):
                    continue
                break
        else:
            yield from url_opener([sample], handler=handler)


def _tar_samples(src: Iterable[dict[str, Any]]) -> Iterator[dict]:
    """``wds.tarfile_to_samples`` with ``_open_shards`` as its opener."""
    handler = wds.reraise_exception
    files = tar_file_expander(_open_shards(src, handler), handler=handler)
    return group_by_keys(files, handler=handler)


def group_transform(resolution: int) -> Transform:
    """The trainer's image transform: resize the shorter side, center-crop, scale to [-1, 1]."""
    return transforms.Compose(
        [
            transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),
            transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        ]
    )


def decode_group(sample: dict[str, Any], transform: Transform, max_group_size: int | None = None) -> dict:
    """One shard sample -> {"group_id", "images" (n, 3, R, R), "captions", "meta"}.

    A group longer than ``max_group_size`` keeps its first images (still a contiguous run of the group).
    """
    meta = json.loads(sample["json"])
    n = int(meta["n"])
    if max_group_size is not None:
        n = min(n, max_group_size)
    by_index = {key.partition(".")[0]: key for key in sample if key[0].isdigit()}
    images = []
    for i in range(n):
        with Image.open(io.BytesIO(sample[by_index[str(i)]])) as image:
            images.append(transform(image.convert("RGB")))
    return {
        "group_id": sample["__key__"],
        "images": torch.stack(images),
        "captions": list(meta["captions"][:n]),
        "meta": meta,
    }


def collate_groups(groups: list[dict]) -> dict:
    return {
        "group_id": [g["group_id"] for g in groups],
        "images": torch.stack([g["images"] for g in groups]),
        "captions": [g["captions"] for g in groups],
        "meta": [g["meta"] for g in groups],
    }


def groups_per_batch(n: int, batch_size: int, images_per_batch: int | None) -> int:
    return batch_size if images_per_batch is None else max(1, images_per_batch // n)


def bucket_by_size(
    groups: Iterable[dict], batch_size: int, keep_partial: bool, images_per_batch: int | None = None
) -> Iterator[dict]:
    """Batches of equal-n groups (B: see the module docstring); leftovers at the end if ``keep_partial``."""
    buckets: dict[int, list[dict]] = {}
    for group in groups:
        n = len(group["images"])
        bucket = buckets.setdefault(n, [])
        bucket.append(group)
        if len(bucket) == groups_per_batch(n, batch_size, images_per_batch):
            yield collate_groups(bucket)
            bucket.clear()
    if keep_partial:
        for bucket in buckets.values():
            if bucket:
                yield collate_groups(bucket)


def _worker() -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _rank_worker_seed(rank: int) -> int:
    return rank * 1000 + _worker()[0]


def _split_by_rank(src: Iterable, rank: int, world_size: int) -> Iterator:
    yield from islice(src, rank, None, world_size)


def _shuffle(src: Iterable, bufsize: int, seed: int, rank: int) -> Iterator:
    """A shuffle buffer seeded per rank and worker (webdataset's default seeds from time and pid)."""
    rng = random.Random(seed * 1_000_003 + _rank_worker_seed(rank))
    buffer: list = []
    for item in src:
        buffer.append(item)
        if len(buffer) >= bufsize:
            yield buffer.pop(rng.randrange(len(buffer)))
    rng.shuffle(buffer)
    yield from buffer


def rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values win; else torch.distributed's, when initialized; else a single process."""
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def group_dataset(
    urls: list[str],
    *,
    batch_size: int,
    resolution: int,
    train: bool,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    shuffle_buffer: int = 64,
    max_group_size: int | None = None,
    transform: Transform | None = None,
    images_per_batch: int | None = None,
) -> wds.DataPipeline:
    """The per-worker pipeline: shard list -> samples -> decoded groups -> batches of equal n."""
    decode = partial(
        decode_group, transform=transform or group_transform(resolution), max_group_size=max_group_size
    )
    if train:
        worker_seed = partial(_rank_worker_seed, rank)
        shards: list = [wds.ResampledShards(urls, seed=seed, worker_seed=worker_seed, deterministic=True)]
    else:
        shards = [
            wds.SimpleShardList(urls),
            partial(_split_by_rank, rank=rank, world_size=world_size),
            wds.split_by_worker,
        ]
    stages = [
        *shards,
        _tar_samples,
        *([partial(_shuffle, bufsize=shuffle_buffer, seed=seed, rank=rank)] if train else []),
        wds.map(decode),
        partial(
            bucket_by_size, batch_size=batch_size, keep_partial=not train, images_per_batch=images_per_batch
        ),
    ]
    return wds.DataPipeline(*stages)


def group_loader(
    shards: str | Path | Sequence[str],
    *,
    split: str = "train",
    batch_size: int = 2,
    resolution: int = 256,
    train: bool = True,
    batches_per_epoch: int | None = None,
    num_workers: int = 2,
    rank: int | None = None,
    world_size: int | None = None,
    seed: int = 0,
    shuffle_buffer: int = 64,
    max_group_size: int | None = None,
    transform: Transform | None = None,
    images_per_batch: int | None = None,
) -> wds.WebLoader:
    """A loader of group batches (see the module docstring for the contract).

    Training needs ``batches_per_epoch`` (per rank); pass a different ``seed`` when resuming to draw a
    fresh, still reproducible stream. Workers persist across epochs, so each epoch draws new shards.
    """
    rank, world_size = rank_and_world(rank, world_size)
    dataset = group_dataset(
        shard_urls(shards, split),
        batch_size=batch_size,
        resolution=resolution,
        train=train,
        rank=rank,
        world_size=world_size,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        max_group_size=max_group_size,
        transform=transform,
        images_per_batch=images_per_batch,
    )
    loader = wds.WebLoader(
        dataset, batch_size=None, num_workers=num_workers, persistent_workers=num_workers > 0 and train
    )
    if train:
        if batches_per_epoch is None:
            raise ValueError("training draws shards forever: set batches_per_epoch")
        loader = loader.with_epoch(batches_per_epoch)
    return loader
