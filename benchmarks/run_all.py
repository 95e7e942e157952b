"""``make bench``: run every benchmark, then rewrite BENCHMARKS.md from their result sections.

A benchmark that fails keeps its previous section (marked stale) so one broken benchmark never erases
the others' figures; the failure is printed and the command exits non-zero.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from benchmarks.common import RESULTS

BENCHMARKS = [
    "extract",
    "fetch",
    "embed",
    "label_server",
    "label_efficiency",
    "dedup",
    "dedup_edits",
    "caption",
    "shards",
    "train",
    "train_ablation",
    "scale",
]
OUT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def main(names: list[str]) -> int:
    failed = []
    for name in names:
        print(f"== benchmarks.{name}", flush=True)
        try:
            importlib.import_module(f"benchmarks.{name}").main([])
        except Exception:
            traceback.print_exc()
            failed.append(name)
    sections = []
    for name in BENCHMARKS:
        path = RESULTS / f"{name}.md"
        if path.exists():
            text = path.read_text()
            if name in failed:
                text += "\n_Stale: the last run of this benchmark failed; the figures above are older._\n"
            sections.append(text)
    # No date in the header: the file is also reassembled from older sections (``main([])``), and each
    # section carries the machine and date its figures were measured on.
    header = (
        "# Benchmarks\n\nWritten by `make bench` (`python -m benchmarks.run_all`; one benchmark: `python -m "
        "benchmarks.NAME`), assembled from `benchmarks/results/`. Each section names the machine, the date "
        "and the load it was measured on.\n"
    )
    OUT.write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {OUT}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or BENCHMARKS))
