"""``gdt shard verify``: re-read every tar and check it against what the stage recorded.

Checks per tar: the sha256 and size listed in ``_manifest.json``; that the archive reads to the end; that
every sample is one json that parses with ``n`` images ``0..n-1`` that decode; that samples, ``n``, offsets
and sizes match the index. Checks per set: every recorded tar exists, no tar is unrecorded, and
``index.parquet`` agrees with the manifest. An unfinished set (no manifest yet, e.g. a killed run) is never
ok; its tars are still checked against the index parts of the shards that finished, so a tar that is
damaged is reported, while a whole tar whose part had no time to record itself is only uncertified.

Inputs: the shard folder. Output: a ``VerifyReport`` listing each problem with its shard and group.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from manifests.ledger import read_manifest
from manifests.storage import as_path, children, read_parquet
from pipeline.shard.plan import INDEX, SHARD_NAME

BLOCK = 512


@dataclass(frozen=True)
class Problem:
    shard: str
    group_id: str | None
    message: str

    def __str__(self) -> str:
        where = self.shard if self.group_id is None else f"{self.shard} {self.group_id}"
        return f"{where}: {self.message}"


@dataclass
class VerifyReport:
    complete: bool = False  # the stage finished (manifest present)
    shards: int = 0
    groups: int = 0
    images: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.complete and not self.problems


class _HashingReader:
    def __init__(self, raw: BinaryIO):
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


@dataclass
class _Sample:
    key: str
    offset: int
    end: int = 0
    files: dict[str, bytes] = field(default_factory=dict)


def _samples(tar: tarfile.TarFile) -> Iterator[_Sample]:
    """Consecutive members sharing a key (the name up to the first dot) form one sample."""
    current: _Sample | None = None
    for member in tar:
        key, _, suffix = member.name.partition(".")
        if current is None or key != current.key:
            if current is not None:
                yield current
            current = _Sample(key, member.offset)
        data = tar.extractfile(member)
        current.files[suffix] = data.read() if data else b""
        current.end = member.offset_data + -(-member.size // BLOCK) * BLOCK
    if current is not None:
        yield current


def _check_sample(sample: _Sample, decode: bool) -> tuple[list[str], int]:
    """Problems of one sample and its image count."""
    if "json" not in sample.files:
        return ["no json"], 0
    try:
        meta = json.loads(sample.files["json"])
        n = int(meta["n"])
    except (ValueError, KeyError, TypeError) as err:
        return [f"json does not parse: {err}"], 0
    problems = []
    if meta.get("group_id") != sample.key:
        problems.append(f"json group_id {meta.get('group_id')!r} differs from the key")
    if len(meta.get("captions", [])) != n:
        problems.append(f"{len(meta.get('captions', []))} captions for n={n}")
    images = {k.partition(".")[0]: v for k, v in sample.files.items() if k != "json"}
    if sorted(images) != [str(i) for i in range(n)]:
        problems.append(f"image members {sorted(images)} do not match n={n}")
    for i, data in sorted(images.items()):
        if not decode:
            break
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            problems.append(f"image {i} does not decode: {err}")
    return problems, len(images)


def verify_tar(
    path: Path,
    expected: dict[str, Any] | None,
    index: dict[str, dict[str, int]] | None,
    decode: bool = True,
    recorded: bool = True,
) -> tuple[list[Problem], int, int]:
    """Problems of one tar, and the groups and images it holds.

    ``expected``: its sha256 and size; ``index``: its index rows by group (None: not indexed yet);
    ``recorded``: whether the set is finished, so that a tar without a sha256 is a problem.
    """
    name, problems, seen, images = path.name, [], set(), 0
    with path.open("rb") as raw:
        reader = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for sample in _samples(tar):
                    if sample.key in seen:
                        problems.append(Problem(name, sample.key, "appears more than once"))
                    seen.add(sample.key)
                    messages, count = _check_sample(sample, decode)
                    images += count
                    problems += [Problem(name, sample.key, m) for m in messages]
                    row = None if index is None else index.get(sample.key)
                    if index is not None and row is None:
                        problems.append(Problem(name, sample.key, "not in the index"))
                    elif row is not None and (row["offset"], row["bytes"]) != (
                        sample.offset,
                        sample.end - sample.offset,
                    ):
                        problems.append(Problem(name, sample.key, "offset or size differs from the index"))
        except (tarfile.TarError, EOFError, OSError) as err:
            problems.append(Problem(name, None, f"unreadable tar: {err}"))
        while reader.read(1 << 20):
            pass
    if expected is None and recorded:
        problems.append(Problem(name, None, "not recorded in the manifest (no sha256)"))
    elif expected is not None and (reader.digest.hexdigest(), reader.size) != (
        expected["sha256"],
        expected["bytes"],
    ):
        problems.append(Problem(name, None, "sha256 or size differs from the record (altered or truncated)"))
    for group_id in sorted(set(index or {}) - seen):
        problems.append(Problem(name, group_id, "in the index but missing from the tar"))
    return problems, len(seen), images


def _index_rows(paths: list[Path]) -> dict[str, dict[str, dict[str, int]]]:
    """Index rows by shard, then by group id."""
    index: dict[str, dict[str, dict[str, int]]] = {}
    for path in paths:
        for row in read_parquet(path).to_pylist():
            index.setdefault(row["shard"], {})[row["group_id"]] = row
    return index


def verify_shards(out_dir: Path, decode: bool = True) -> VerifyReport:
    """Verify every tar of a shard folder; see the module docstring for what is checked."""
    out_dir = as_path(out_dir)
    report = VerifyReport()
    manifest = read_manifest(out_dir)
    tars = sorted((p for p in children(out_dir) if SHARD_NAME.match(p.name)), key=str)
    expected: dict[str, dict[str, Any]] = {}
    if manifest is not None:
        report.complete = True
        expected = {
            o.path: {"sha256": o.sha256, "bytes": o.bytes}
            for o in manifest.outputs
            if o.path.endswith(".tar")
        }
        index = _index_rows([out_dir / INDEX]) if (out_dir / INDEX).exists() else {}
        if not (out_dir / INDEX).exists():
            report.problems.append(Problem(INDEX, None, "missing"))
        elif sum(len(v) for v in index.values()) != manifest.counts_out.get("index"):
            report.problems.append(Problem(INDEX, None, "row count differs from the manifest"))
        for name in sorted(set(expected) - {p.name for p in tars}):
            report.problems.append(Problem(name, None, "recorded in the manifest but missing"))
    else:
        parts = (
            p
            for p in children(out_dir / "index")
            if p.name.startswith("part-") and p.name.endswith(".parquet")
        )
        index = _index_rows(sorted(parts, key=str))
    for path in tars:
        rows = index.get(path.name)
        if manifest is not None and rows is None:
            rows = {}  # a finished set indexes every tar: any sample in it is then reported
        problems, groups, images = verify_tar(
            path, expected.get(path.name), rows, decode, manifest is not None
        )
        report.problems += problems
        report.shards += 1
        report.groups += groups
        report.images += images
    return report
