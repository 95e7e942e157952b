"""URLs -> bytes, as a crawler: one async HTTP client per worker, hundreds of requests in flight.

A ``Crawler`` lives as long as its worker (a Ray actor's state): its event loop runs in a thread of its
own and its ``aiohttp.ClientSession`` keeps connections open from one part to the next. (aiohttp rather
than httpx: at 64 requests in flight on a 100 ms loopback server, httpx managed ~100 requests/s and
aiohttp ~520 on the same two busy cores.) ``fetch_all`` takes a part's URLs and reports each result
through a callback as soon as it is known, so decoding starts while other URLs are still on the wire.
Deadlines that hold:

- one deadline per attempt covers resolving, connecting, the headers and the body together, so a server
  that trickles a header line every few seconds is cut after ``timeout_s`` (``fetch_timeout``);
- one budget per part (``fetch_budget_s``): URLs not done by then are cut (``fetch_timeout``) and left for
  ``gdt extract --retry-failed``, so a few slow hosts never set the pace of a run;
- timeouts are not retried inside the part; quick failures (429, 5xx, a refused connection) are, after
  the host's ``Retry-After`` or a short backoff.

Every hop of a redirect is checked and pinned by the ``AddressGuard``; politeness is ``HostSlots``'s job.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ssl
import threading
import urllib.parse
from collections.abc import Callable

import aiohttp

from manifests.drops import DropReason
from pipeline.extract.config import ExtractConfig
from pipeline.extract.fetch import FetchFailure
from pipeline.extract.guard import AddressGuard, PinnedResolver, Resolver
from pipeline.extract.politeness import HostSlots, opt_out, retry_after_seconds

_IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Result = bytes | FetchFailure
Attempt = tuple[Result, float | None]  # the result, and the seconds to wait before trying again (None: don't)


class Crawler:
    """Fetches URLs for one worker; ``fetch_all`` may be called from any thread, one part at a time."""

    def __init__(self, cfg: ExtractConfig, resolver: Resolver | None = None):
        self.cfg = cfg
        self.guard = AddressGuard(cfg, resolver)
        self.hosts = HostSlots(cfg.per_host_concurrency, cfg.per_host_delay_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: aiohttp.ClientSession | None = None
        self._in_flight: asyncio.Semaphore | None = None
        self._lock = threading.Lock()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """Started on first use: most parts of a local corpus never fetch a URL."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="crawler", daemon=True)
                self._thread.start()
                # a worker ends without telling its state: close the connections before the interpreter goes
                atexit.register(self.close)
            return self._loop

    def fetch_all(self, urls: list[str], done: Callable[[str, Result], None]) -> None:
        """Fetch ``urls`` within one part budget; ``done(url, result)`` is called (on the crawler's
        thread) once per URL as it finishes. Returns when every URL has been reported."""
        if urls:
            asyncio.run_coroutine_threadsafe(self._fetch_all(urls, done), self._event_loop()).result()

    def close(self) -> None:
        if self._loop is None:
            return
        atexit.unregister(self.close)
        # bounded waits: a worker on its way out must not hang on a connection that will not close
        if self._client is not None:
            closing = asyncio.run_coroutine_threadsafe(self._client.close(), self._loop)
            with contextlib.suppress(Exception):
                closing.result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = self._client = None

    # -- on the crawler's event loop ------------------------------------------------------------------

    def _make_client(self) -> aiohttp.ClientSession:
        cfg = self.cfg
        connector = aiohttp.TCPConnector(
            limit=cfg.fetch_concurrency,
            resolver=PinnedResolver(self.guard),  # connects to the address the guard checked
            use_dns_cache=False,  # the guard's pins are the cache
            keepalive_timeout=30.0,
            ssl=self._tls_context(),
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": cfg.user_agent, "Accept": "image/*"},
            # no timers of aiohttp's own: ``_attempt``'s deadline covers the whole request (one timer less
            # per request, and a crawler's CPU per URL is what a fetch worker spends)
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # a crawl keeps no state between requests
        )

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.cfg.ca_file:
            context.load_verify_locations(cafile=self.cfg.ca_file)
        return context

    async def _fetch_all(self, urls: list[str], done: Callable[[str, Result], None]) -> None:
        if self._client is None:
            self._client = self._make_client()
            self._in_flight = asyncio.Semaphore(self.cfg.fetch_concurrency)
        deadline = asyncio.get_running_loop().time() + self.cfg.fetch_budget_s

        async def one(url: str) -> None:
            try:
                result = await self._fetch_within(url, deadline)
            except Exception as err:  # a URL the client cannot even parse must cost that URL, not the part
                result = FetchFailure(DropReason.FETCH_ERROR, f"{type(err).__name__}: {err}")
            done(url, result)

        await asyncio.gather(*(one(url) for url in urls))

    async def _fetch_within(self, url: str, deadline: float) -> Result:
        try:
            async with asyncio.timeout_at(deadline):
                return await self._fetch(url)
        except TimeoutError:
            budget = self.cfg.fetch_budget_s
            return FetchFailure(DropReason.FETCH_TIMEOUT, f"cut by the part's fetch budget of {budget} s")

    async def _fetch(self, url: str) -> Result:
        attempts = self.cfg.retries + 1
        for attempt in range(attempts):
            result, wait = await self._attempt(url, attempt)
            if wait is None:
                return result
            if attempt + 1 < attempts:
                await asyncio.sleep(wait)
        assert isinstance(result, FetchFailure)
        return FetchFailure(result.reason, f"{result.detail} (after {attempts} attempts)")

    async def _attempt(self, url: str, attempt: int) -> Attempt:
        """One attempt, redirects included; each hop waits for a slot of its host."""
        backoff = min(0.5 * 2**attempt, 8.0)
        for _ in range(self.cfg.max_redirects + 1):
            host = urllib.parse.urlsplit(url).hostname or ""
            assert self._in_flight is not None
            async with self.hosts.slot(host), self._in_flight:
                try:
                    async with asyncio.timeout(self.cfg.timeout_s):
                        outcome = await self._request(url, host, backoff)
                except TimeoutError:
                    detail = f"no full answer within timeout_s {self.cfg.timeout_s} s"
                    return FetchFailure(DropReason.FETCH_TIMEOUT, detail), None
                except aiohttp.ClientSSLError as err:  # a certificate does not get better on a retry
                    return FetchFailure(DropReason.FETCH_ERROR, f"TLS: {err}"), None
                except (aiohttp.ClientError, OSError) as err:
                    return FetchFailure(DropReason.FETCH_ERROR, f"{type(err).__name__}: {err}"), backoff
            if not isinstance(outcome, str):
                return outcome
            url = outcome
        detail = f"more than {self.cfg.max_redirects} redirects"
        return FetchFailure(DropReason.FETCH_ERROR, detail), None

    async def _request(self, url: str, host: str, backoff: float) -> str | Attempt:
        """A redirect's target, or the attempt's result."""
        refused = await self.guard.check(url)
        if refused:
            return refused, None
        assert self._client is not None
        async with self._client.get(url, allow_redirects=False) as response:  # by hand: every hop checked
            status = response.status
            if status in _REDIRECT_STATUSES and "location" in response.headers:
                return urllib.parse.urljoin(url, response.headers["location"])
            if status in _RETRY_STATUSES:
                failure = FetchFailure(DropReason.FETCH_ERROR, f"HTTP {status}")
                after = retry_after_seconds(response.headers.get("retry-after"))
                if after is None:
                    return failure, backoff
                self.hosts.back_off(host, after)  # every request to the host waits, not just this one
                if after > self.cfg.max_retry_after_s:
                    detail = f"HTTP {status}, Retry-After {after:.0f} s over max_retry_after_s"
                    return FetchFailure(DropReason.FETCH_ERROR, detail), None
                return failure, 0.0  # the host's slot already waits for Retry-After
            if status != 200:
                return FetchFailure(DropReason.FETCH_ERROR, f"HTTP {status}"), None
            if self.cfg.honour_opt_outs:
                directive = opt_out(response.headers.getall("x-robots-tag", []), self.cfg.user_agent)
                if directive:
                    detail = f"X-Robots-Tag {directive} (extract.honour_opt_outs)"
                    return FetchFailure(DropReason.OPTED_OUT, detail), None
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and not content_type.startswith(_IMAGE_CONTENT_TYPES):
                return FetchFailure(DropReason.NOT_IMAGE, f"content type {content_type}"), None
            return await self._read_body(response), None

    async def _read_body(self, response: aiohttp.ClientResponse) -> Result:
        limit = self.cfg.max_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            return FetchFailure(DropReason.TOO_LARGE, f"{declared} bytes > max_bytes {limit}")
        if declared is not None:  # aiohttp reads no more than the declared length
            return await response.read()
        chunks, size = [], 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                return FetchFailure(DropReason.TOO_LARGE, f"body over max_bytes {limit}")
            chunks.append(chunk)
        return b"".join(chunks)
