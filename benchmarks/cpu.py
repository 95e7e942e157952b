"""CPU seconds of processes, read from ``/proc``: a command and every process it started, one process,
and the finished children of this one."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path


class TreeCpu:
    """CPU seconds of a process and all its descendants, sampled from ``/proc`` every ``period`` s while
    it runs: Ray's workers and daemons are the command's descendants but not all are waited for, so
    ``RUSAGE_CHILDREN`` misses them. A process's last ``period`` before it ends is not counted."""

    def __init__(self, period: float = 0.2):
        self.period, self.seen, self.root = period, {}, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def start(self, root: int) -> None:
        self.root = root
        self.thread.start()

    def finish(self) -> float:
        self.stop.set()
        self.thread.join()
        return sum(self.seen.values())

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.is_set():
            parents, cpu = {}, {}
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    fields = _stat_fields(entry / "stat")
                except OSError:
                    continue
                pid = int(entry.name)
                parents[pid] = int(fields[1])
                cpu[pid] = _cpu_seconds(fields, tick)
            tree = {self.root}
            for pid in sorted(parents):  # children have higher pids, except after pid wrap-around
                if parents[pid] in tree:
                    tree.add(pid)
            for pid in sorted(set(parents) - tree):  # a second pass catches the wrapped ones
                if parents[pid] in tree:
                    tree.add(pid)
            for pid in tree:
                self.seen[pid] = max(self.seen.get(pid, 0.0), cpu.get(pid, 0.0))
            self.stop.wait(self.period)


def _stat_fields(stat: Path) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (which may hold spaces and parentheses)."""
    return stat.read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str], tick: int) -> float:
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def process_cpu_seconds(pid: int) -> float:
    return _cpu_seconds(_stat_fields(Path(f"/proc/{pid}/stat")), os.sysconf("SC_CLK_TCK"))


def children_cpu_seconds() -> float:
    """CPU time of the finished child processes (and theirs, when they waited for them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
