"""How much of a file is in the page cache (Linux ``mincore``), for tests of writes that leave it."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

import pytest


def resident_fraction(path: Path) -> float:
    """The share of ``path``'s pages in the page cache; mapping the file reads none of them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    int_ = ctypes.c_int
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, int_, int_, int_, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as file:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, file.fileno(), 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(ctypes.c_void_p(address), size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            libc.munmap(ctypes.c_void_p(address), size)
    return sum(byte & 1 for byte in vector) / pages


def require_droppable_pages(folder: Path) -> None:
    """Skip unless this OS and ``folder``'s filesystem drop a written file's pages on request (Linux, a
    disk-backed filesystem: tmpfs pages *are* the file)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("page-cache residency is read with Linux's mincore")
    probe = folder / "page-cache-probe.bin"
    with open(probe, "wb") as file:
        file.write(os.urandom(1 << 20))
        file.flush()
        os.fsync(file.fileno())
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    dropped = resident_fraction(probe) < 0.5
    probe.unlink()
    if not dropped:
        pytest.skip(f"the filesystem of {folder} keeps a file's pages in memory")
