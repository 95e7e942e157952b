"""The openai backend against a local server that misbehaves on purpose (tests/captioning/fake_openai.py)."""

from __future__ import annotations

import socket

import pytest

from captioning.backends.base import GroupRequest, ImageContext, caption_all
from captioning.backends.openai_http import OpenAIBackendConfig, OpenAICaptioner
from captioning.backends.pool import ServerPool
from captioning.templates import load_templates
from tests.captioning.fake_openai import FakeOpenAI
from tests.captioning.runs import photo_png

PHOTO = photo_png("coffee", side=48)


def request(marker: str, n: int = 2) -> GroupRequest:
    context = tuple(ImageContext(alt=f"[[{marker}]] image {i}") for i in range(n))
    return GroupRequest(marker, (PHOTO,) * n, context, "doc", load_templates()["generic"])


def backend(*urls: str, **changes) -> OpenAICaptioner:
    settings = {"timeout_s": 0.6, "max_attempts": 4, "backoff_base_s": 0.01, "backoff_max_s": 0.05, **changes}
    return OpenAICaptioner(OpenAIBackendConfig(base_urls=list(urls), model="fake", **settings))


def free_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there once the socket is closed


def test_transient_faults_are_retried_until_valid():
    script = {
        "a": ["500", "429", "ok"],
        "b": ["malformed", "ok"],
        "c": ["not_json", "wrong_count", "ok"],
        "d": ["timeout", "ok"],
        "e": ["empty", "ok"],
    }
    with FakeOpenAI(script, slow_s=1.5) as server:
        outcomes = caption_all(backend(server.url), [request(m) for m in script])
    assert [o.error for o in outcomes] == [None] * 5
    assert [o.attempts for o in outcomes] == [3, 2, 3, 2, 2]
    assert {m: server.requests_for(m) for m in script} == {"a": 3, "b": 2, "c": 3, "d": 2, "e": 2}
    assert outcomes[0].captions == ["a picture 1 of 2", "a picture 2 of 2"]
    assert outcomes[0].group_caption == "a group of 2"


def test_persistent_faults_become_errors_not_exceptions():
    script = {"a": ["500"] * 4, "b": ["wrong_count"] * 4, "c": ["timeout"] * 4, "ok": []}
    with FakeOpenAI(script, slow_s=1.0) as server:
        outcomes = caption_all(backend(server.url), [request(m) for m in script])
    errors = {o.group_id: o.error for o in outcomes}
    assert "500 server error" in errors["a"] and "after 4 attempts" in errors["a"]
    assert "3 captions for 2 images" in errors["b"]
    assert "timeout after 0.6s" in errors["c"]
    assert errors["ok"] is None
    assert server.requests_for("a") == 4 and server.requests_for("ok") == 1


def test_a_refused_request_is_not_retried_and_names_the_limit():
    with FakeOpenAI(image_limit=4) as server:
        [big, fine] = caption_all(backend(server.url), [request("big", n=5), request("fine", n=4)])
    assert server.requests_for("big") == 1
    assert "server refused the request (400)" in big.error and "At most 4 image(s)" in big.error
    assert fine.ok and len(fine.captions) == 4


def test_known_image_limit_fails_before_sending():
    with FakeOpenAI() as server:
        [outcome] = caption_all(backend(server.url, max_images=3), [request("big", n=4)])
    assert server.log == []
    assert (
        "4 images" in outcome.error
        and "at most 3" in outcome.error
        and "--limit-mm-per-prompt" in outcome.error
    )


def test_request_carries_schema_sampling_and_images():
    with FakeOpenAI() as server:
        caption_all(backend(server.url), [request("a", n=3)])
    body = server.bodies[0]
    assert body["model"] == "fake"
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["captions"]["minItems"] == 3
    assert body["max_tokens"] == load_templates()["generic"].sampling.max_tokens
    images = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    assert len(images) == 3 and all(p["image_url"]["url"].startswith("data:image/") for p in images)


def test_dead_replica_is_skipped_for_a_live_one():
    dead = free_port_url()
    with FakeOpenAI() as live:
        outcomes = caption_all(backend(dead, live.url), [request(f"g{i}") for i in range(6)])
    assert all(o.ok for o in outcomes)
    assert len(live.log) == 6


def test_requests_are_shared_over_replicas():
    with FakeOpenAI() as one, FakeOpenAI() as two:
        caption_all(backend(one.url, two.url, balance="round_robin"), [request(f"g{i}") for i in range(8)])
        assert (len(one.log), len(two.log)) == (4, 4)
        caption_all(backend(one.url, two.url), [request(f"h{i}") for i in range(8)])
        assert len(one.log) + len(two.log) == 16 and min(len(one.log), len(two.log)) >= 6


def test_server_dying_mid_run_fails_the_rest_cleanly():
    script = {"g2": ["die"]}
    with FakeOpenAI(script) as server:
        outcomes = caption_all(
            backend(server.url, concurrency_per_server=1), [request(f"g{i}") for i in range(5)]
        )
    assert [o.ok for o in outcomes] == [True, True, False, False, False]
    assert "cannot reach" in outcomes[3].error


def test_least_busy_prefers_idle_servers():
    pool = ServerPool(["a", "b", "c"])
    with pool.server() as first, pool.server() as second, pool.server() as third:
        assert {first, second, third} == {0, 1, 2}
    pool.mark_down(1)
    picks = []
    for _ in range(4):
        with pool.server() as index:
            picks.append(index)
    assert 1 not in picks


def test_backoff_grows_with_jitter_and_is_capped():
    b = backend("http://x/v1", backoff_base_s=1.0, backoff_max_s=5.0)
    first = [b.backoff_s(1) for _ in range(50)]
    third = [b.backoff_s(3) for _ in range(50)]
    assert all(0.5 <= d <= 1.0 for d in first) and len(set(first)) > 1
    assert all(2.0 <= d <= 4.0 for d in third)
    assert all(d <= 5.0 for d in (b.backoff_s(10) for _ in range(50)))


def test_pool_needs_a_url():
    with pytest.raises(ValueError, match="at least one base URL"):
        ServerPool([])
