"""Small text helpers for the report: cut long document text, format numbers."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (data: URIs and long paragraphs stay readable)."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_bytes(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    k = 0
    while abs(n) >= 1024 and k < len(units) - 1:
        n /= 1024
        k += 1
    return f"{n:,.0f} B" if k == 0 else f"{n:,.1f} {units[k]}"
