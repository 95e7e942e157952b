"""The caption stage: a slice of groups -> captions and drops tables.

Per part: each group gets a kind (``captioning.kinds``, or the groups table's ``category``) and the
selector's template for that kind; a group whose (content, template id, backend, model) already has a
caption in the cache reuses it (and its kind), the others are captioned by the backend (one request per
group, concurrently); a group the backend could not caption becomes a ``caption_failed`` drop (or
``caption_truncated``; ``identity_inconsistent`` under ``strict_identity``). Each row keeps the group's
kind, the reply's identity fields and whether every caption names that identity.
Before the parts start, the driver checks every server once (``captioning.preflight``): a wrong model,
key or URL stops the run with one clear message instead of a drop per group.

When the stage reruns: a changed template or registry changes its inputs, so the stage runs again and
recaptions only the groups whose template id changed; with the ``openai`` backend, a finished run that
left ``caption_failed`` drops runs again too, retrying just those groups (the rest come from the cache).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from captioning import cache
from captioning.backends.base import CaptionBackend, CaptionOutcome, GroupRequest, caption_all
from captioning.config import CaptionConfig
from captioning.evaluate import EVAL_DIR
from captioning.furniture import repeated_sentences
from captioning.identity import identity_consistent
from captioning.inputs import (
    PartInputs,
    PartPlan,
    PendingGroup,
    group_kind,
    groups_stage,
    image_bytes,
    plan_parts,
    read_groups,
)
from captioning.preflight import preflight
from captioning.selector import kind_from_category
from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import STARTED, InputRef, StageManifest, read_manifest
from manifests.schemas import CAPTIONS, DROPS
from manifests.storage import read_parquet
from manifests.tables import part_files
from pipeline.errors import UserError
from pipeline.stage import Part, Stage

TEMPLATES_REF = "caption:templates"
RETRY_REF = "caption:retry-failed"


def key_of(group: PendingGroup, template_id: str, backend: CaptionBackend) -> cache.CacheKey:
    return (group.group_id, group.content, template_id, backend.name, backend.model)


def caption_part(
    inputs: PartInputs, backend: CaptionBackend, strict_identity: bool = False
) -> dict[str, pa.Table]:
    """Reuse cached captions, caption the rest, and return the part's captions and drops tables."""
    rows: list[dict[str, Any]] = []
    drops: list[dict[str, str]] = []
    requests: list[GroupRequest] = []
    by_id = {g.group_id: g for g in inputs.groups}
    for group in inputs.groups:
        assert group.template is not None, "the stage picks every group's template before captioning"
        cached = inputs.cached.get(key_of(group, backend.template_id(group.template), backend))
        if cached is not None:
            rows.append(cached)
            continue
        missing = [i for i in group.image_ids if i not in inputs.images]
        if backend.needs_images and missing:
            detail = f"image {missing[0]} is not in extract/images"
            drops.append(drop_row(group.group_id, DropKind.GROUP, DropReason.CAPTION_FAILED, detail))
            continue
        images = tuple(inputs.images.get(i, b"") for i in group.image_ids)
        requests.append(GroupRequest(group.group_id, images, group.context, group.document, group.template))
    for outcome in caption_all(backend, requests) if requests else []:
        group = by_id[outcome.group_id]
        if not outcome.ok:
            reason = DropReason.CAPTION_TRUNCATED if outcome.truncated else DropReason.CAPTION_FAILED
            drops.append(drop_row(outcome.group_id, DropKind.GROUP, reason, outcome.error or "unknown"))
            continue
        rows.append(caption_row(outcome, backend, group))
    if strict_identity:  # cached rows too: the setting may be new since they were made
        kept = []
        for row in rows:
            if row["identity_consistent"] is False:
                field = by_id[row["group_id"]].template.shared_field or ""
                detail = f"{field}={dict(row['identity']).get(field)!r} is missing from some captions"
                drops.append(
                    drop_row(row["group_id"], DropKind.GROUP, DropReason.IDENTITY_INCONSISTENT, detail)
                )
            else:
                kept.append(row)
        rows = kept
    return {
        "captions": pa.Table.from_pylist(rows, schema=CAPTIONS),
        "drops": pa.Table.from_pylist(drops, schema=DROPS),
    }


def caption_row(outcome: CaptionOutcome, backend: CaptionBackend, group: PendingGroup) -> dict[str, Any]:
    assert group.template is not None
    return {
        "group_id": outcome.group_id,
        "captions": outcome.captions,
        "group_caption": outcome.group_caption,
        "template": outcome.template_id,
        "backend": backend.name,
        "model": backend.model,
        "content": group.content,
        "kind": group.kind,
        "identity": dict(outcome.fields),
        "identity_consistent": identity_consistent(group.template, outcome.captions, outcome.fields),
    }


def retry_ref(cfg: CaptionConfig, stage_dir: Path) -> InputRef | None:
    """An input that differs from the last run's while that run left ``caption_failed`` drops.

    Server failures are transient, so a rerun should retry them; deterministic failures of the
    context backend are not retried. A run killed half-way resumes under the ref it started with.
    """
    if cfg.backend != "openai":
        return None
    manifest = read_manifest(stage_dir)
    if manifest is None:
        started = stage_dir / STARTED
        if not started.exists():
            return None
        recorded = [InputRef(**r) for r in json.loads(started.read_text()).get("inputs", [])]
        return next((r for r in recorded if r.path == RETRY_REF), None)
    if not manifest.dropped.get(str(DropReason.CAPTION_FAILED)):
        return next((r for r in manifest.inputs if r.path == RETRY_REF), None)
    token = f"{manifest.timings.get('started')}:{manifest.config_hash}"
    return InputRef(path=RETRY_REF, hash=hashlib.sha256(token.encode()).hexdigest()[:16])


class CaptionStage(Stage):
    name = "caption"
    Config = CaptionConfig
    outputs: ClassVar[dict[str, pa.Schema]] = {"captions": CAPTIONS, "drops": DROPS}
    uses_actors = True  # one backend (HTTP clients, pool state) per worker
    cpus_per_part = 0.5  # mostly waiting on the servers
    # parts an actor runs at once: while one part loads images or drains its last requests, the others
    # keep the actor's lanes (concurrency_per_server per server) busy
    parts_per_actor = 4
    keeps = (cache.CACHE_DIR, EVAL_DIR)  # captions reused by reruns; `caption eval` pages

    def input_refs(self, cfg: CaptionConfig, run: Path) -> list[InputRef]:
        source = groups_stage(run, cfg.groups_from)
        refs = []
        for stage in dict.fromkeys([source, "extract"]):
            manifest = read_manifest(run / stage)
            if manifest is None:
                raise UserError(f"caption needs {stage!r} first: run `gdt {stage} --run {run}`")
            refs.append(InputRef(path=stage, hash=manifest.content_hash()))
        if cfg.backend == "openai":
            refs.append(InputRef(path=TEMPLATES_REF, hash=cfg.templates_fingerprint(run)))
        retry = retry_ref(cfg, run / self.name)
        return [*refs, retry] if retry else refs

    def plan(self, cfg: CaptionConfig, run: Path) -> list[Part]:
        preflight(cfg.make_backend())  # once, on the driver, before any part starts
        source = groups_stage(run, cfg.groups_from)
        plans = plan_parts(run, source, cfg.groups_per_part, cache.index(run), repeated_sentences(run))
        return [Part(i, plan) for i, plan in enumerate(plans)]

    def setup(self, cfg: CaptionConfig) -> CaptionBackend:
        return cfg.make_backend()

    def load(self, cfg: CaptionConfig, run: Path, part: Part) -> PartInputs:
        backend = cfg.make_backend()  # cheap: only its identity is needed here
        plan: PartPlan = part.payload
        groups = read_groups(run, plan.groups, plan.furniture)
        found = cache.read_cached(run, plan.cache_files, [g.group_id for g in groups])
        # a cached caption of the same content already knows its kind: no image is read for it
        known = {(key[0], key[1]): row["kind"] for key, row in found.items() if row.get("kind")}
        unknown = [
            g for g in groups if (g.group_id, g.content) not in known and not kind_from_category(g.category)
        ]
        images = image_bytes(run, [i for g in unknown for i in g.image_ids])
        selector = cfg.make_selector(run)
        for group in groups:
            group.kind = (
                kind_from_category(group.category)
                or known.get((group.group_id, group.content))
                or group_kind(group, images)
            )
            group.template = selector.select(group.kind)
        keys = {g.group_id: key_of(g, backend.template_id(g.template), backend) for g in groups}
        cached = {k: found[k] for k in keys.values() if k in found}
        todo = [g for g in groups if keys[g.group_id] not in cached]
        if backend.needs_images:
            images.update(image_bytes(run, [i for g in todo for i in g.image_ids if i not in images]))
        wanted = {i for g in todo for i in g.image_ids}
        return PartInputs(
            groups=groups, images={i: b for i, b in images.items() if i in wanted}, cached=cached
        )

    def count_in(self, inputs: PartInputs) -> dict[str, int]:
        return {"groups": len(inputs.groups), "cached": len(inputs.cached)}

    def run(self, cfg: CaptionConfig, inputs: PartInputs, state: CaptionBackend) -> dict[str, pa.Table]:
        return caption_part(inputs, state, cfg.strict_identity)

    def finalize(self, cfg: CaptionConfig, run: Path) -> dict[str, Any]:
        cache.store(run, self.name)
        templates: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        for path in part_files(run, self.name, "captions"):
            table = read_parquet(path, columns=["template", "kind"])
            templates.update(table.column("template").to_pylist())
            kinds.update(k or "-" for k in table.column("kind").to_pylist())
        backend = cfg.make_backend()
        return {
            "backend": backend.name,
            "model": backend.model,
            "templates": dict(sorted(templates.items())),
            "kinds": dict(sorted(kinds.items())),
        }

    def summary_lines(self, manifest: StageManifest) -> list[str]:
        extra = manifest.extra
        templates = ", ".join(f"{t} {n:,}" for t, n in extra.get("templates", {}).items()) or "-"
        kinds = ", ".join(f"{k} {n:,}" for k, n in extra.get("kinds", {}).items()) or "-"
        return [
            f"backend: {extra.get('backend')} (model {extra.get('model')})",
            f"kinds: {kinds}",
            f"templates: {templates}",
        ]
