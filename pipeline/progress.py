"""A progress bar over a stage's parts (rich), quiet when output is not a terminal."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class PartProgress:
    """Counts finished parts and the rows they wrote; resumed parts start the bar part-way."""

    def __init__(self, stage: str, total: int, done: int, enabled: bool = True):
        self.enabled = enabled and total > 0
        self.rows = 0
        console = Console(file=sys.stderr)
        self._progress = Progress(
            TextColumn(f"[bold]{stage}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("parts"),
            TextColumn("{task.fields[rows]} rows"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.enabled or not console.is_terminal,
        )
        self._task = self._progress.add_task(stage, total=total, completed=done, rows=0)

    def advance(self, stats: dict[str, Any]) -> None:
        self.rows += sum(stats.get("rows", {}).values())
        self._progress.update(self._task, advance=1, rows=self.rows)

    def __enter__(self) -> PartProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)
