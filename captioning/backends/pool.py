"""Share requests over several OpenAI-compatible servers (vLLM replicas): least-busy or round-robin.

A server that refused a connection rests for a while (growing with repeated failures) and gets no new
requests while others are up; if all rest, they are tried anyway so a run never stalls on the pool.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

Balance = Literal["least_busy", "round_robin"]


class ServerPool:
    def __init__(
        self, base_urls: Sequence[str], balance: Balance = "least_busy", rest_s: float = 1.0
    ) -> None:
        if not base_urls:
            raise ValueError("at least one base URL is needed")
        self.base_urls = list(base_urls)
        self.balance = balance
        self.rest_s = rest_s
        self.in_flight = [0] * len(base_urls)
        self.served = [0] * len(base_urls)
        self._failures = [0] * len(base_urls)
        self._resting_until = [0.0] * len(base_urls)
        self._turn = itertools.count()

    def _pick(self) -> int:
        now = time.monotonic()
        up = [i for i in range(len(self.base_urls)) if self._resting_until[i] <= now]
        candidates = up or list(range(len(self.base_urls)))
        start = next(self._turn)
        # Rotating the scan start makes ties (and round-robin) spread evenly over the candidates.
        ordered = [candidates[(start + k) % len(candidates)] for k in range(len(candidates))]
        if self.balance == "round_robin":
            return ordered[0]
        return min(ordered, key=lambda i: self.in_flight[i])

    @contextmanager
    def server(self) -> Iterator[int]:
        """Index of the server to use for one request; counts it as busy meanwhile."""
        index = self._pick()
        self.in_flight[index] += 1
        try:
            yield index
        finally:
            self.in_flight[index] -= 1
            self.served[index] += 1

    def mark_down(self, index: int) -> None:
        self._failures[index] += 1
        rest = min(30.0, self.rest_s * 2 ** (self._failures[index] - 1))
        self._resting_until[index] = time.monotonic() + rest

    def mark_up(self, index: int) -> None:
        self._failures[index] = 0
        self._resting_until[index] = 0.0
