"""Which addresses a URL may reach, and connections pinned to the address that was checked.

The guard resolves a URL's host once, refuses it if any of its addresses is private, loopback, link-local,
reserved or multicast (unless the config allows it), and pins the host to the first checked address. The
HTTP client's resolver then answers the pinned address only, never resolving the name again,
so a resolver that answers a public address to the check and 127.0.0.1 to the connection (DNS
rebinding) cannot reach loopback. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp.abc import AbstractResolver, ResolveResult

from manifests.drops import DropReason
from pipeline.extract.config import ExtractConfig
from pipeline.extract.fetch import FetchFailure

Resolver = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> addresses

PIN_SECONDS = 300.0  # how long a checked answer is reused; a later check resolves and checks again
MAX_PINS = 100_000  # beyond this many hosts, expired pins are forgotten


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


class AddressGuard:
    """Checks hosts and remembers the address each one is pinned to (one per worker, on its event loop)."""

    def __init__(self, cfg: ExtractConfig, resolver: Resolver | None = None):
        self.allow_private = cfg.allow_private_addresses
        self.networks = [ipaddress.ip_network(n, strict=False) for n in cfg.allowed_networks]
        self.resolver = resolver or system_resolver
        self.pins: dict[str, tuple[str, float]] = {}  # host -> (address, pinned until)

    def allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if self.allow_private or any(address in network for network in self.networks):
            return True
        return address.is_global and not address.is_multicast

    async def check(self, url: str) -> FetchFailure | None:
        """None when ``url`` may be fetched; its host is then pinned to a checked address."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FetchFailure(DropReason.FETCH_ERROR, f"not an http(s) URL: {url}")
        host = parts.hostname
        pinned = self.pins.get(host)
        if pinned and pinned[1] > time.monotonic():
            return None
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
                answers = await self.resolver(host, port)
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in answers]
            except (OSError, UnicodeError, ValueError) as err:
                return FetchFailure(DropReason.FETCH_ERROR, f"cannot resolve {host}: {err}")
        if not addresses:
            return FetchFailure(DropReason.FETCH_ERROR, f"cannot resolve {host}: no address")
        for address in addresses:
            if not self.allowed(address):
                return FetchFailure(
                    DropReason.FETCH_ERROR,
                    f"refused non-public address {address} for {host} (extract.allowed_networks)",
                )
        if len(self.pins) >= MAX_PINS:  # a crawl meets millions of hosts: forget the expired answers
            now = time.monotonic()
            self.pins = {h: pin for h, pin in self.pins.items() if pin[1] > now}
        self.pins[host] = (str(addresses[0]), time.monotonic() + PIN_SECONDS)
        return None

    def pinned(self, host: str) -> str | None:
        entry = self.pins.get(host)
        return entry[0] if entry else None


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver, answering the guard's pinned address instead of resolving again."""

    def __init__(self, guard: AddressGuard):
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.guard.pinned(host)
        if address is None:  # every request is checked first; reaching here unchecked is a bug, refuse
            raise OSError(f"no checked address for {host}")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": family, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass
