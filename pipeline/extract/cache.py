"""Per-worker memory of decode results for local files and ``data:`` URIs, least recently used first out.

A documentation site shows the same figure in every translation of a page, and the translations land in
different parts: without this, each part decodes the figure again. Results do not depend on the cache
(decoding is deterministic), only the time does. URLs are not kept: their bytes may change between parts.
"""

from __future__ import annotations

from collections import OrderedDict

from pipeline.extract.decode import DecodedImage
from pipeline.extract.fetch import FetchFailure, Target

_ENTRY_OVERHEAD = 512  # bytes of bookkeeping per entry besides the stored image bytes


class DecodeCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self._entries: OrderedDict[Target, DecodedImage | FetchFailure] = OrderedDict()

    @staticmethod
    def keeps(target: Target) -> bool:
        return target.kind in ("path", "data")

    def get(self, target: Target) -> DecodedImage | FetchFailure | None:
        result = self._entries.get(target)
        if result is not None:
            self._entries.move_to_end(target)
            self.hits += 1
        return result

    def put(self, target: Target, result: DecodedImage | FetchFailure) -> None:
        size = self._size(target, result)
        if not self.keeps(target) or size > self.max_bytes or target in self._entries:
            return
        self._entries[target] = result
        self.bytes += size
        while self.bytes > self.max_bytes:
            old, evicted = self._entries.popitem(last=False)
            self.bytes -= self._size(old, evicted)

    @staticmethod
    def _size(target: Target, result: DecodedImage | FetchFailure) -> int:
        data = len(result.data) if isinstance(result, DecodedImage) else len(result.detail)
        return data + len(target.value) + _ENTRY_OVERHEAD
