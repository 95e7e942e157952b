"""The one-screen summary every stage prints at the end: in, out, dropped by reason, time."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from manifests.ledger import StageManifest


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "-"


def print_summary(manifest: StageManifest, up_to_date: bool, extra: list[str] | None = None) -> None:
    console = Console(highlight=False)
    status = "up to date (nothing to do)" if up_to_date else "done"
    seconds = manifest.timings.get("seconds", 0.0)
    table = Table(title=f"{manifest.stage}: {status} in {seconds:.1f} s", title_justify="left", box=None)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("in", _counts(manifest.counts_in))
    table.add_row("out", _counts(manifest.counts_out))
    table.add_row("dropped", _counts(manifest.dropped))
    parts = manifest.parts
    table.add_row(
        "parts", f"{parts.get('total', 0)} ({parts.get('run', 0)} run, {parts.get('resumed', 0)} resumed)"
    )
    for line in extra or []:
        key, _, value = line.partition(":")
        table.add_row(key, value.strip())
    console.print(table)
