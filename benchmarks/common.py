"""What every benchmark shares: the machine's description, writing a result section, and the scale
benchmarks' synthetic ids, cache folders and peak-memory reading."""

from __future__ import annotations

import datetime as dt
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def write_result(name: str, title: str, body: str) -> str:
    """Write one benchmark's section (with machine and date) and return it."""
    today = dt.date.today().isoformat()
    section = f"## {title}\n\n_Machine: {machine()}. Date: {today}._\n\n{body.strip()}\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(section)
    print(section)
    return section


def hex_ids(rng: np.random.Generator, n: int, chars: int) -> list[str]:
    """``n`` random lowercase hex ids of ``chars`` characters (synthetic image, document and group ids)."""
    text = rng.bytes(n * chars // 2).hex()
    return [text[k * chars : (k + 1) * chars] for k in range(n)]


def scale_cache_dir(kind: str, version: int, n: int) -> Path:
    """Where a scale benchmark keeps its synthetic collection of ``n`` images between runs; ``version`` is
    bumped whenever the synthetic data changes."""
    return Path(tempfile.gettempdir()) / "gdt-scale-cache" / f"{kind}-v{version}-{n}"


def peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that over fork and exec, so a
    step started by the process that synthesized the data would report the synthesizer's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")
