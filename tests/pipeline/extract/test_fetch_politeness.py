"""A polite crawler: Retry-After honoured, X-Robots-Tag opt-outs honoured by default, a per-host cap on
requests in flight, and connections reused from one part to the next."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from pipeline.extract.crawler import Crawler
from pipeline.extract.politeness import HostSlots, opt_out, retry_after_seconds

from . import http_server
from .test_fetch import LOOPBACK, fetch, fetch_all


@pytest.fixture
def server():
    with http_server.serve() as url:
        yield url


def test_a_429_is_retried_after_its_retry_after(server):
    assert fetch(f"{server}/busy.jpg") == http_server.IMAGE
    first, second = http_server.Handler.hit_times["/busy.jpg"]
    assert second - first >= 1.0  # the server said Retry-After: 1


def test_a_retry_after_beyond_the_cap_fails_the_url_for_a_later_pass(server):
    cfg = LOOPBACK.model_copy(update={"max_retry_after_s": 5.0, "retries": 3})
    result = fetch(f"{server}/closed.jpg", cfg)
    assert result.reason == "fetch_error"
    assert result.detail == "HTTP 503, Retry-After 3600 s over max_retry_after_s"
    assert http_server.Handler.hits["/closed.jpg"] == 1


def test_noai_is_honoured_by_default_and_off_only_by_setting(server):
    opted = fetch(f"{server}/noai.jpg")
    assert opted.reason == "opted_out" and "noai" in opted.detail
    assert fetch(f"{server}/other-bot.jpg") == http_server.IMAGE  # scoped to another crawler
    assert fetch(f"{server}/noai.jpg", LOOPBACK.model_copy(update={"honour_opt_outs": False})) == (
        http_server.IMAGE
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["noai, noimageai"], "noai"),
        (["noimageai"], "noimageai"),
        (["none"], "none"),
        (["NoIndex"], "noindex"),
        (["nofollow", "noimageindex"], "noimageindex"),
        (["gdt: noindex"], "noindex"),
        (["otherbot: noai"], None),
        (["nofollow, unavailable_after: 25 Jun 2010 15:00:00 PST"], None),
        ([], None),
    ],
)
def test_opt_out_directives(values, expected):
    assert opt_out(values, "gdt/0.1.0 (+https://example.org)") == expected


def test_retry_after_as_seconds_or_a_date():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_requests_to_one_host_stay_under_the_per_host_cap(server):
    cfg = LOOPBACK.model_copy(update={"per_host_concurrency": 3, "fetch_concurrency": 64})
    urls = [f"{server}/slow/{i}.jpg" for i in range(24)]
    results = fetch_all(urls, cfg)
    assert all(results[u] == http_server.slow_image(i) for i, u in enumerate(urls))
    assert 2 <= http_server.Handler.max_in_flight <= 3


def test_connections_are_kept_from_one_part_to_the_next(server):
    cfg = LOOPBACK.model_copy(update={"per_host_concurrency": 2})
    crawler = Crawler(cfg)
    got: dict = {}
    try:
        for part in range(3):
            crawler.fetch_all([f"{server}/cat.jpg?part={part}&i={i}" for i in range(8)], got.__setitem__)
    finally:
        crawler.close()
    assert len(got) == 24 and set(got.values()) == {http_server.IMAGE}
    assert len(http_server.Handler.connections) <= 2


def test_requests_to_one_host_are_spaced_by_the_delay_and_idle_hosts_forgotten(server):
    cfg = LOOPBACK.model_copy(update={"per_host_delay_s": 0.3})
    crawler = Crawler(cfg)
    got: dict = {}
    try:
        crawler.fetch_all([f"{server}/cat.jpg?i={i}" for i in range(4)], got.__setitem__)
        assert crawler.hosts.hosts == {}  # nothing holds 127.0.0.1 back any more: not kept for ever
    finally:
        crawler.close()
    assert set(got.values()) == {http_server.IMAGE}
    times = sorted(http_server.Handler.hit_times["/cat.jpg"])
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(times))  # 0.3 s, less jitter


def test_a_request_cut_while_it_waits_for_its_host_gives_its_place_back():
    """A part's budget cancels requests still waiting for a slot or for a Retry-After to pass: neither
    may keep a slot taken or the host remembered."""

    async def scenario() -> tuple[dict, dict, float]:
        loop = asyncio.get_running_loop()
        hosts = HostSlots(concurrency=1, delay_s=0.0)

        async def request() -> None:
            async with hosts.slot("a"):
                await asyncio.sleep(0)

        async with hosts.slot("a"):
            for_slot = asyncio.create_task(request())  # waits for the one slot
            await asyncio.sleep(0.01)
            for_slot.cancel()
        await asyncio.gather(for_slot, return_exceptions=True)
        after_slot_wait = dict(hosts.hosts)
        async with hosts.slot("a"):
            hosts.back_off("a", 0.2)
        for_pause = asyncio.create_task(request())  # holds the slot, waits out the Retry-After
        await asyncio.sleep(0.01)
        for_pause.cancel()
        await asyncio.gather(for_pause, return_exceptions=True)
        after_pause = {host: state.users for host, state in hosts.hosts.items()}
        started = loop.time()
        await asyncio.wait_for(request(), 2.0)  # the slot was given back: only the Retry-After is waited
        return after_slot_wait, after_pause, loop.time() - started

    after_slot_wait, after_pause, waited = asyncio.run(scenario())
    assert after_slot_wait == {}
    assert after_pause == {"a": 0}  # kept only for its Retry-After, held by nobody
    assert 0.1 < waited < 1.0
