"""``write_report``: gather every section of the report from a run folder and write the static page.

Inputs: a run folder (any subset of stages may have run), an optional truth file, a ``ReportConfig``.
Output: ``OUT/index.html`` (default ``RUN/report``) and ``OUT/img/`` (thumbnails, the classifier's plots).
The page is built in a temporary sibling folder and moved into place when complete, so a reader never
sees half a report. Text from documents is escaped by the template engine (autoescape).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from manifests.ledger import MANIFEST
from manifests.storage import AnyPath, as_path, describe, is_remote, list_files, remove, write_bytes
from pipeline.errors import UserError
from pipeline.report.categories import CategoryResolver
from pipeline.report.clusters import dedup_view
from pipeline.report.config import ReportConfig
from pipeline.report.distributions import distributions
from pipeline.report.drops import StageDrops, stage_drops
from pipeline.report.funnel import funnel
from pipeline.report.galleries import galleries
from pipeline.report.metrics import classifier_view
from pipeline.report.reading import STAGES, manifest_of
from pipeline.report.shards import shard_view
from pipeline.report.svg import bar_chart
from pipeline.report.text import clip, human_bytes
from pipeline.report.thumbs import ThumbnailSet

INDEX = "index.html"

CONFIG_CHARS = 200_000


@dataclass
class ManifestEntry:
    stage: str
    summary: str
    text: str


def _manifests(run: AnyPath) -> list[ManifestEntry]:
    """Every ``RUN/*/_manifest.json``, pipeline stages first; unreadable ones are shown as they are."""
    paths = sorted(run.glob(f"*/{MANIFEST}"), key=lambda p: (_rank(p.parent.name), p.parent.name))
    entries = []
    for path in paths:
        raw = path.read_text(errors="replace")
        try:
            text = json.dumps(json.loads(raw), indent=2, sort_keys=True)
        except ValueError:
            text = raw
        manifest = manifest_of(run, path.parent.name)
        if manifest is None:
            summary = "a manifest this version cannot read"
        else:
            seconds = manifest.timings.get("seconds", 0.0)
            out = ", ".join(f"{k} {v:,}" for k, v in manifest.counts_out.items())
            summary = f"out: {out or '-'}; dropped {sum(manifest.dropped.values()):,}; {seconds:.1f} s"
        entries.append(ManifestEntry(path.parent.name, summary, clip(text, CONFIG_CHARS)))
    return entries


def _rank(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def _config_text(run: AnyPath) -> str | None:
    path = run / "config.yaml"
    return clip(path.read_text(errors="replace"), CONFIG_CHARS) if path.exists() else None


def _want_thumbnails(thumbs: ThumbnailSet, sections: dict[str, Any]) -> None:
    for stage in sections["drops"]:
        for reason in stage.reasons:
            for example in reason.examples:
                thumbs.want(example.image_ids)
    gallery = sections["galleries"]
    for card in [*gallery.kept, *gallery.rejected]:
        thumbs.want(card.image_ids)
    for pair in gallery.duplicates:
        thumbs.want(pair.duplicate.image_ids)
        thumbs.want(pair.kept.image_ids)
    for cluster in sections["dedup"].largest:
        thumbs.want(cluster.image_ids)


def gather(run: AnyPath, out: Path, cfg: ReportConfig, truth: Path | None) -> dict[str, Any]:
    """Every section's data; writes the classifier's plots under ``out``."""
    shards = shard_view(run)
    categories = CategoryResolver.for_run(run, truth, [r.name for r in shards.rows])
    steps = funnel(run)
    return {
        "run": str(run),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "truth": str(truth) if truth else None,
        "stages": {stage: manifest_of(run, stage) is not None for stage in STAGES},
        "funnel": steps,
        "funnel_chart": bar_chart(
            [(s.label, [s.count]) for s in steps], title="funnel", chart_id="funnel-chart"
        ),
        "drops": stage_drops(run, cfg),
        "distributions": distributions(run, categories),
        "classifier": classifier_view(run, out),
        "galleries": galleries(run, cfg, categories),
        "dedup": dedup_view(run, cfg),
        "shards": shards,
        "config_text": _config_text(run),
        "manifests": _manifests(run),
        "cfg": cfg,
    }


def _reason_rows(stage: StageDrops) -> list[tuple[str, list[int | None]]]:
    return [(r.reason, [r.count]) for r in stage.reasons]


def render(sections: dict[str, Any], thumbs: ThumbnailSet) -> str:
    env = Environment(
        loader=PackageLoader("pipeline.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(bar_chart=bar_chart, human_bytes=human_bytes, thumbs=thumbs, reason_rows=_reason_rows)
    return env.get_template("report.html").render(**sections)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / INDEX).exists())):
        raise UserError(f"{out} exists and does not hold a report; choose an empty or new folder")


def write_report(
    run: AnyPath | str, out: Path | None = None, cfg: ReportConfig | None = None, truth: Path | None = None
) -> AnyPath:
    """Write the report of ``run`` into ``out`` (default ``RUN/report``); returns the index.html path.

    A run on an object store gets its report built on the local disk and then copied to ``RUN/report``
    (``index.html`` last, so a half-copied report still shows the previous page), unless ``out`` names a
    local folder."""
    run = as_path(run)
    if not run.is_dir():
        raise UserError(f"run folder not found: {describe(run)}")
    if truth is not None and not Path(truth).is_file():
        raise UserError(f"truth file not found: {truth}")
    cfg = cfg or ReportConfig()
    if out is None and is_remote(run):
        with tempfile.TemporaryDirectory(prefix="gdt-report-") as local:
            built = _build(run, Path(local) / "report", cfg, truth)
            _upload(built.parent, run / "report")
        return run / "report" / INDEX
    out = Path(out) if out else run / "report"
    _check_out(out)
    return _build(run, out, cfg, truth)


def _build(run: AnyPath, out: Path, cfg: ReportConfig, truth: Path | None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        sections = gather(run, tmp, cfg, truth)
        thumbs = ThumbnailSet(cfg.thumb_px)
        _want_thumbnails(thumbs, sections)
        thumbs.write(run, tmp)
        (tmp / INDEX).write_text(render(sections, thumbs), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes the folder private; a report is meant to be opened and shared
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / INDEX


def _upload(local: Path, remote: AnyPath) -> None:
    """Copy a built report to a store: every file, ``index.html`` last, then remove what the new report no
    longer has (thumbnails of groups an earlier report showed)."""
    files = sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.name == INDEX, str(p)))
    for path in files:
        write_bytes(remote / path.relative_to(local).as_posix(), path.read_bytes())
    kept = {path.relative_to(local).as_posix() for path in files}
    for name in list_files(remote):
        if name not in kept:
            remove(remote / name)


def _replace(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``; an earlier report there is removed only once the new one is in place."""
    if not out.exists():
        new.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{new.name.rsplit('-', 1)[-1]}")
    out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)
