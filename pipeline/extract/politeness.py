"""Being a good crawler: per-host request slots and pauses, ``Retry-After``, and ``X-Robots-Tag`` opt-outs.

``HostSlots`` caps the requests in flight to one host, spaces their starts by ``per_host_delay_s``, and
holds every request to a host back until a ``Retry-After`` the host sent has passed. ``opt_out`` reads
``X-Robots-Tag`` the way img2dataset does: the directives that bar an image from a dataset are ``noai``,
``noimageai``, ``noindex``, ``noimageindex`` and ``none``, unscoped or scoped to our user agent's token.
"""

from __future__ import annotations

import asyncio
import email.utils
from datetime import UTC, datetime

OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex", "none"})


class _Host:
    def __init__(self, concurrency: int):
        self.slots = asyncio.Semaphore(concurrency)
        self.next_start = 0.0  # loop time before which no request to this host starts
        self.users = 0  # requests holding or waiting for a slot


class _Slot:
    """One request's hold on a slot of its host (a class, not a generator: one of these per URL)."""

    __slots__ = ("host", "owner", "state")

    def __init__(self, owner: HostSlots, host: str):
        self.owner, self.host = owner, host

    async def __aenter__(self) -> None:
        owner, host = self.owner, self.host
        state = owner.hosts.get(host)
        if state is None:
            state = owner.hosts[host] = _Host(owner.concurrency)
        self.state = state
        state.users += 1
        try:
            await state.slots.acquire()
        except BaseException:
            self._leave(acquired=False)
            raise
        loop = asyncio.get_running_loop()
        try:
            while (wait := state.next_start - loop.time()) > 0:  # a Retry-After may push it meanwhile
                await asyncio.sleep(wait)
        except BaseException:
            self._leave(acquired=True)
            raise
        state.next_start = max(state.next_start, loop.time() + owner.delay_s)

    async def __aexit__(self, *exc: object) -> None:
        self._leave(acquired=True)

    def _leave(self, acquired: bool) -> None:
        state = self.state
        if acquired:
            state.slots.release()
        state.users -= 1
        # a crawl meets millions of hosts: forget the idle ones, unless a Retry-After still holds them
        # back (the pause after the last request is forgotten: the next one comes from a later part)
        if not state.users and state.next_start <= asyncio.get_running_loop().time() + self.owner.delay_s:
            del self.owner.hosts[self.host]


class HostSlots:
    """Per-host politeness for one worker's event loop."""

    def __init__(self, concurrency: int, delay_s: float):
        self.concurrency = concurrency
        self.delay_s = delay_s
        self.hosts: dict[str, _Host] = {}

    def slot(self, host: str) -> _Slot:
        """``async with hosts.slot(host):`` waits for a slot of ``host`` and its next allowed start."""
        return _Slot(self, host)

    def back_off(self, host: str, seconds: float) -> None:
        """Hold every request to ``host`` back for ``seconds`` (the host said it is busy)."""
        state = self.hosts.get(host)
        if state is not None:
            state.next_start = max(state.next_start, asyncio.get_running_loop().time() + seconds)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - datetime.now(UTC).timestamp())


def opt_out(values: list[str], user_agent: str) -> str | None:
    """The opt-out directive among ``X-Robots-Tag`` header values that applies to us, or None.

    A value is either directives (``noai, noimageai``) or directives scoped to one crawler
    (``otherbot: noindex``); a scope other than our token (the user agent's first word) is not ours.
    """
    token = user_agent.split("/")[0].split()[0].lower() if user_agent.strip() else ""
    for value in values:
        scope, sep, rest = value.partition(":")
        if sep and scope.strip() and "," not in scope and scope.strip().lower() not in OPT_OUT_DIRECTIVES:
            if scope.strip().lower() not in (token, "*"):
                continue
            value = rest
        for directive in value.split(","):
            if directive.strip().lower() in OPT_OUT_DIRECTIVES:
                return directive.strip().lower()
    return None
