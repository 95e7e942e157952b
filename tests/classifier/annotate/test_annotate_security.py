"""Sessions, limits and exposure, against a real server process on loopback (httpx, raw sockets)."""

from __future__ import annotations

import socket

import httpx
import pytest

from classifier.annotate.auth import COOKIE
from classifier.annotate.sessions import SessionStore
from classifier.annotate.store import LabelStore

pytestmark = pytest.mark.integration


def origin(server) -> dict[str, str]:
    return {"Origin": server.url}


def log_in(server, token: str) -> httpx.Response:
    return httpx.post(f"{server.url}/login", data={"token": token}, headers=origin(server), timeout=30)


@pytest.fixture
def served(tmp_path, make_run, label_cli, server_factory):
    make_run(tmp_path, 4, source=lambda g: f"/srv/private/corpus/batch{g}/doc{g}.html")
    token = label_cli("add-annotator", "--run", str(tmp_path), "ann").stdout.strip()
    server = server_factory(tmp_path, "label.login_attempts=3", "label.allowed_hosts=[labels.example]")
    return server, token, tmp_path


def test_the_cookie_is_a_session_not_the_token_and_dies_with_logout(served):
    server, token, _ = served
    response = log_in(server, token)
    session = response.cookies[COOKIE]
    assert (
        response.status_code == 303
        and session
        and session != token
        and token not in response.headers["set-cookie"]
    )
    with httpx.Client(base_url=server.url, cookies={COOKIE: session}, timeout=30) as browser:
        assert browser.get("/api/next").status_code == 200
        assert browser.post("/logout", headers=origin(server)).status_code == 303
    assert httpx.get(f"{server.url}/api/next", cookies={COOKIE: session}).status_code == 401
    # the token itself is no cookie: only a login turns it into a session
    assert httpx.get(f"{server.url}/api/next", cookies={COOKIE: token}).status_code == 401
    assert (
        httpx.get(f"{server.url}/api/next", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )


def test_sessions_expire_and_end_when_the_token_rotates_or_the_annotator_is_disabled(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add_annotator("ann")
    ann = store.annotator_id("ann")
    assert SessionStore(store, lifetime_seconds=-1).create(ann) is not None
    expired = SessionStore(store, lifetime_seconds=-1)
    assert expired.lookup(expired.create(ann)) is None
    live = SessionStore(store, lifetime_seconds=3600)
    rotated = live.create(ann)
    token = store.add_annotator("ann", rotate=True)
    assert live.lookup(rotated) is None
    disabled = live.create(ann)
    assert live.lookup(disabled)[1] == "ann"
    store.set_disabled("ann", True)
    assert live.lookup(disabled) is None and store.authenticate(token) is None  # nor the bearer token
    store.set_disabled("ann", False)
    assert live.lookup(disabled) is None  # enabling again does not bring old sessions back
    assert store.authenticate(token)[1] == "ann"


def raw_post(server, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """Send a request head and part of a body; return what the server answers before the rest."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        return sock.recv(65536)


def test_an_oversized_body_without_a_token_gets_413_before_it_is_read(served):
    server, token, _ = served
    json_head = {"Content-Type": "application/json", "Origin": server.url}
    # 50 MB announced, 64 KB sent: the answer comes without the server waiting for the rest
    answer = raw_post(
        server, "/api/labels", {**json_head, "Content-Length": str(50 << 20)}, b"{" + b" " * 65536
    )
    assert answer.startswith(b"HTTP/1.1 413")
    # no length announced (chunked): counted while it streams
    chunk = b" " * 32768
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4))
    answer = raw_post(
        server, "/api/labels", {**json_head, "Transfer-Encoding": "chunked"}, b"1\r\n{\r\n" + chunked
    )
    assert answer.startswith(b"HTTP/1.1 413")
    login = raw_post(
        server,
        "/login",
        {**json_head, "Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(10 << 20)},
        b"token=",
    )
    assert login.startswith(b"HTTP/1.1 413")
    # a wrong body under the cap is refused without being echoed back
    bearer = {"Authorization": f"Bearer {token}"}
    invalid = httpx.post(
        f"{server.url}/api/labels", json={"group_id": "x" * 20000, "label": 1}, headers=bearer
    )
    assert invalid.status_code == 422 and "xxxxxxxx" not in invalid.text


def test_a_request_for_another_host_name_is_refused(served):
    server, token, _ = served
    bearer = {"Authorization": f"Bearer {token}"}
    port = server.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "attacker.localhost"):
        response = httpx.get(f"{server.url}/api/next", headers={**bearer, "Host": host})
        assert response.status_code == 400, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"labels.example:{port}"):
        assert httpx.get(f"{server.url}/api/next", headers={**bearer, "Host": host}).status_code == 200, host


def test_failed_logins_are_throttled(served):
    server, token, _ = served
    for _ in range(3):
        assert log_in(server, "wrong").status_code == 401
    throttled = log_in(server, token)  # even the right token waits: guessing must not go on
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert "Too many failed logins" in throttled.text
    assert (
        httpx.get(f"{server.url}/api/next", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )


def test_annotators_never_see_the_servers_file_paths(served):
    server, token, run = served
    response = log_in(server, token)
    with httpx.Client(base_url=server.url, cookies={COOKIE: response.cookies[COOKIE]}, timeout=30) as browser:
        group = browser.get("/api/next").json()["group"]
        assert group["source"].startswith("doc") and group["source_url"] is None
        for path in ("/", "/history", "/stats", "/guidelines", "/api/next", "/api/history", "/api/stats"):
            text = browser.get(path).text
            assert "/srv/private" not in text and str(run) not in text, path
