"""Starting or joining Ray: a local cluster when none is given, the one ``RAY_ADDRESS`` names otherwise."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import platform
from collections.abc import Callable
from typing import Any

from manifests.config import RuntimeConfig
from manifests.storage import storage_env

GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)
# Freed heap a pool actor keeps for reuse instead of handing it back to the system (glibc's default: 128
# KB): above a fetch part's working set (its response bodies: ~30 MB for 1,024 web photos).
MALLOC_TRIM_THRESHOLD_BYTES = 256 << 20
# Blocks from this size up get pages of their own, unmapped when freed (the most glibc allows: 32 MB); a
# part's image bytes joined into one column buffer (~30 MB) stay below it.
MALLOC_MMAP_THRESHOLD_BYTES = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)


def ensure_ray(runtime: RuntimeConfig) -> None:
    """Connect this process to Ray once; later calls are no-ops."""
    import ray

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], logging_level=logging.WARNING)
        else:
            # A cluster started here only listens on loopback; nothing leaves the machine.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(
                num_cpus=runtime.num_cpus,
                object_store_memory=runtime.object_store_mb * 1024**2,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                logging_level=logging.WARNING,
                configure_logging=True,
                # Ray starts a worker per CPU for the first driver; the runner's actors start processes
                # of their own, so those sat idle (~0.7 CPU s on the fetch benchmark's 2 cores)
                _system_config={"prestart_worker_first_driver": False},
            )


def quiet_ray_data() -> None:
    """Ray Data settings for the runner's pipelines; imported only where a stage runs one (importing
    Ray Data costs ~1 CPU s a process)."""
    from ray.data import DataContext

    # Ray Data logs every execution at INFO and warns that its bars are off; the runner reports instead.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = DataContext.get_current()
    # The runner draws its own bar over parts; Ray's per-operator bars are noise around it.
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def remote_args() -> dict[str, Any]:
    """Ray options for every task and actor of a stage: the driver's object-storage settings travel with
    them (a cluster's workers do not inherit the driver's environment). Ray keeps a runtime environment in
    its control store, so on a shared cluster prefer credentials set on the nodes (instance roles)."""
    env = storage_env()
    return {"runtime_env": {"env_vars": env}} if env else {}


def run_tasks(fn: Callable[..., Any], calls: list[tuple[Any, ...]], num_cpus: float = 1) -> list[Any]:
    """``fn(*args)`` for each call: as Ray tasks when this process runs Ray (the work and its memory stay
    off the driver), else here, one after the other."""
    import ray

    if not ray.is_initialized():
        return [fn(*args) for args in calls]
    task = ray.remote(num_cpus=num_cpus, **remote_args())(fn)
    return ray.get([task.remote(*args) for args in calls])


def node_cpus() -> int:
    """CPUs of the largest node of the cluster this process runs (1 without Ray): what one task may ask
    for and still be placed."""
    import ray

    if not ray.is_initialized():
        return 1
    return max(1, max(int(node["Resources"].get("CPU", 1)) for node in ray.nodes() if node["Alive"]))


def settle_collector() -> None:
    """Tell Python's cyclic garbage collector about a long-lived worker process (a pool actor): what exists
    once the worker is set up (its imports, the stage's state) lives as long as the worker, so it is frozen
    out of the collections, and young objects are collected less often. A fetch part keeps ~100k objects in
    flight (responses, futures, images): the collector took 6-9% of a fetch worker's CPU, each full pass
    holding the GIL its threads share, and ~1% after this. Garbage is collected first, so none is frozen;
    never call it in a process that outlives the stage (freezing is for the process's whole life)."""
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GC_YOUNG_THRESHOLD), gen1, gen2)


def settle_allocator() -> bool:
    """Let a long-lived worker process (a pool actor) keep the memory it frees for reuse (up to
    ``MALLOC_TRIM_THRESHOLD_BYTES``, blocks under ``MALLOC_MMAP_THRESHOLD_BYTES``); True where it was set
    (glibc only: other C libraries have their own policies).

    By default glibc hands the top of its heap back to the system once 128 KB of it is free (a limit that
    moves with the largest block freed so far), and gives each block from 128 KB up pages of its own. A
    fetch part frees its response bodies (~30 MB) and their joined column at its end, and the next part
    faults as much back in, page by page, each page zeroed by the kernel (a fresh one from the hypervisor
    in a VM): allocating and freeing one part's bodies in a loop cost 20-37 ms of CPU a part, 3-4 with the
    threshold, and on the fetch benchmark a worker took 85% fewer page faults. What is kept is reused by
    the next part: the worker's memory stays near its peak between parts instead of dropping, and the
    peak is about the same."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    trim = libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES)
    return bool(trim and libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES))
