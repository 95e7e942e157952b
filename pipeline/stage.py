"""The contract every stage implements (``Stage``), its unit of work (``Part``) and what a run returns.

A stage is plain Python over tables: it plans parts, reads a part's inputs and maps them to output
tables. Everything around that (skip, resume, Ray, progress, the manifest) is ``pipeline.runner``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from manifests.config import StageConfig
from manifests.ledger import InputRef, StageManifest, read_manifest
from manifests.storage import AnyPath
from pipeline.errors import UserError


@dataclass(frozen=True)
class Part:
    """One unit of work, resume and retry. ``payload`` is small and picklable (paths, row ranges)."""

    index: int
    payload: Any = None


class Stage:
    """Base of every stage. Subclasses set the class attributes and implement ``plan`` and ``run``."""

    name: ClassVar[str]  # the stage's folder under RUN and its config section
    Config: ClassVar[type[StageConfig]]
    outputs: ClassVar[dict[str, pa.Schema]]  # tables written per part; always includes "drops"
    upstream: ClassVar[tuple[str, ...]] = ()  # stage folders this stage reads
    # True: parts run on a fixed pool of long-lived Ray actors (``setup`` state, a model, is built once per
    # actor, and a worker starts its next part without waiting for a new task to be scheduled)
    uses_actors: ClassVar[bool] = False
    # parts one actor runs at once (threads): >1 for stages that wait on servers and share a client
    parts_per_actor: ClassVar[int] = 1
    cpus_per_part: ClassVar[float] = 1.0
    keeps: ClassVar[tuple[str, ...]] = ()  # folders in the stage folder that other commands write
    # output tables that only later stages read (image bytes): their files leave the page cache once
    # written (``manifests.storage.open_output``)
    uncached_outputs: ClassVar[frozenset[str]] = frozenset()

    def input_refs(self, cfg: StageConfig, run: AnyPath) -> list[InputRef]:
        """What the outputs depend on besides the config: by default, the upstream manifests."""
        refs = []
        for stage in self.upstream:
            manifest = read_manifest(run / stage)
            if manifest is None:
                raise UserError(f"stage {self.name!r} needs {stage!r} first: run `gdt {stage} --run {run}`")
            refs.append(InputRef(path=stage, hash=manifest.content_hash()))
        return refs

    def plan(self, cfg: StageConfig, run: AnyPath) -> list[Part]:
        raise NotImplementedError

    def setup(self, cfg: StageConfig) -> Any:
        """Per-worker state (a loaded model); built once per actor when ``uses_actors``."""
        return None

    def load(self, cfg: StageConfig, run: AnyPath, part: Part) -> Any:
        """Read one part's inputs; by default the payload is the input."""
        return part.payload

    def run(self, cfg: StageConfig, inputs: Any, state: Any) -> dict[str, pa.Table]:
        raise NotImplementedError

    def write(self, cfg: StageConfig, inputs: Any, state: Any, stage_dir: AnyPath) -> dict[str, pa.Table]:
        """For stages whose output format is files of their own (tar shards, a model): write them under
        ``stage_dir`` through ``manifests.storage.open_output`` (all-or-nothing; same bytes for the same
        part) and report each with ``manifests.ledger.record_write``, then return the part's tables as
        ``run`` does. The part's marker, written after, then certifies and describes those files too."""
        return self.run(cfg, inputs, state)

    def prepare(self, cfg: StageConfig, run: AnyPath) -> None:
        """One-off work that every part needs (an index over the whole input), done once in the driver
        before the parts run. Write it under the stage folder with a leading ``_`` (not an output),
        atomically, and reuse it when it is already there: a resumed stage calls this again, and a
        changed config clears the folder first."""

    def count_in(self, inputs: Any) -> dict[str, int]:
        """What a part consumed, for the summary (e.g. documents, references)."""
        return {}

    def finalize(self, cfg: StageConfig, run: AnyPath) -> dict[str, Any]:
        """A step over all finished parts (must be idempotent); returns facts for the manifest."""
        return {}

    def summary_lines(self, manifest: StageManifest) -> list[str]:
        return []


@dataclass
class StageResult:
    manifest: StageManifest
    skipped: bool
    parts_run: list[int] = field(default_factory=list)
