"""The JSON API and the pages through the real ASGI app: labelling flow and the security rules."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from classifier.annotate.app import create_app
from classifier.annotate.auth import COOKIE
from classifier.annotate.config import LabelConfig

SAME_ORIGIN = {"Origin": "http://localhost"}
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@pytest.fixture
def served(tmp_path, make_run):
    def context(g: int, j: int) -> dict:
        return {"alt": EVIL, "text_before": f"before {EVIL}", "text_after": "after"}

    ids = make_run(tmp_path, 6, context=context)
    app = create_app(tmp_path, LabelConfig(labels_per_group=2), progress=lambda _: None)
    store = app.state.label.store
    tokens = {name: store.add_annotator(name) for name in ("ann", "bob")}
    with TestClient(app, base_url="http://localhost") as client:
        yield client, tokens, ids, tmp_path


def log_in(client: TestClient, token: str) -> None:
    """Log in as a browser does: the client keeps the session cookie."""
    response = client.post("/login", data={"token": token}, headers=SAME_ORIGIN, follow_redirects=False)
    assert response.status_code == 303


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_label_flow_next_label_undo_stats(served):
    client, tokens, ids, _ = served
    h = bearer(tokens["ann"])
    first = client.get("/api/next", headers=h).json()
    group = first["group"]
    assert group["group_id"] in ids and first["progress"]["labelled_by_you"] == 0
    assert [i["position"] for i in group["images"]] == [3, 4]
    assert all(i["url"] == f"/img/{i['image_id']}" for i in group["images"])
    ok = client.post("/api/labels", headers=h, json={"group_id": group["group_id"], "label": "good"})
    assert ok.status_code == 200 and ok.json()["changed"] is True
    again = client.post("/api/labels", headers=h, json={"group_id": group["group_id"], "label": "good"})
    assert again.json()["changed"] is False  # idempotent
    nxt = client.get("/api/next", headers=h).json()
    assert nxt["group"]["group_id"] != group["group_id"]
    assert nxt["recent"][0] == {**nxt["recent"][0], "group_id": group["group_id"], "label": "good"}
    assert client.post("/api/undo", headers=h).json() == {"undone": group["group_id"]}
    assert client.get("/api/next", headers=h).json()["group"]["group_id"] == group["group_id"]
    client.post("/api/labels", headers=h, json={"group_id": group["group_id"], "label": "bad"})
    stats = client.get("/api/stats", headers=h).json()
    assert stats["per_annotator"] == {"ann": {"bad": 1}}
    assert stats["groups"] == {"total": 6, "labelled": 1, "complete": 0, "open": 6, "decided_by_review": 0}


def test_bad_label_requests_are_refused(served):
    client, tokens, ids, _ = served
    h = bearer(tokens["ann"])
    assert (
        client.post("/api/labels", headers=h, json={"group_id": ids[0], "label": "great"}).status_code == 422
    )
    assert (
        client.post("/api/labels", headers=h, json={"group_id": "nope", "label": "good"}).status_code == 404
    )
    assert client.post("/api/undo", headers=h).status_code == 404


@pytest.mark.parametrize("path", ["/api/next", "/api/stats", "/api/history"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}])
def test_api_without_a_valid_token_is_401(served, path, headers):
    client, *_ = served
    response = client.get(path, headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_post_without_a_valid_token_is_401(served):
    client, _, ids, _ = served
    body = {"group_id": ids[0], "label": "good"}
    assert client.post("/api/labels", json=body, headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.post("/api/labels", json=body, headers=SAME_ORIGIN).status_code == 401


@pytest.mark.parametrize("page", ["/", "/history", "/stats"])
def test_pages_without_login_redirect_to_the_login_page(served, page):
    client, *_ = served
    client.cookies.set(COOKIE, "not-a-token")
    response = client.get(page, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_login_sets_an_httponly_strict_cookie_and_rejects_wrong_tokens(served):
    client, tokens, *_ = served
    wrong = client.post("/login", data={"token": "nope"}, headers=SAME_ORIGIN, follow_redirects=False)
    assert wrong.status_code == 401 and "Unknown token" in wrong.text
    ok = client.post("/login", data={"token": tokens["ann"]}, headers=SAME_ORIGIN, follow_redirects=False)
    cookie = ok.headers["set-cookie"]
    assert ok.status_code == 303 and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert ok.headers["location"] == "/guidelines"  # first login: the guidelines first
    assert client.get("/").status_code == 200


def test_image_route_serves_thumbnails_of_this_run_only(served):
    client, tokens, _, run = served
    h = bearer(tokens["ann"])
    image_id = client.get("/api/next", headers=h).json()["group"]["images"][0]["image_id"]
    response = client.get(f"/img/{image_id}", headers=h)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).format == "JPEG"
    assert (run / "labels" / "thumbs" / image_id[:2] / f"{image_id}.jpg").exists()
    assert client.get(f"/img/{image_id}").status_code == 401
    (run / "outside.txt").write_text("secret")
    for bad in [
        "0" * 64,  # well-formed, not an image of this run
        image_id.upper(),
        image_id[:-1],
        "..%2F..%2Foutside.txt",
        "..%2f..%2foutside.txt",
        "%2e%2e%2foutside.txt",
        "....//outside.txt",
        "%2Fetc%2Fpasswd",
        f"{image_id}%00.jpg",
        f"..%5C{image_id}",
    ]:
        response = client.get(f"/img/{bad}", headers=h)
        assert response.status_code == 404, bad
        assert b"secret" not in response.content and b"root:" not in response.content


def test_document_text_is_escaped_in_the_page(served):
    client, tokens, *_ = served
    log_in(client, tokens["ann"])
    page = client.get("/")
    assert page.status_code == 200
    assert "<script>window.pwned" not in page.text and 'onerror="window' not in page.text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {"Origin": "http://localhost.evil.example"},
        {},  # a cookie-authenticated POST must say where it comes from
    ],
)
def test_cross_origin_state_changes_are_refused(served, headers):
    client, tokens, ids, _ = served
    log_in(client, tokens["ann"])
    for path, body in [("/api/labels", {"group_id": ids[0], "label": "good"}), ("/api/undo", {})]:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 403, (path, headers)
    login = client.post("/login", data={"token": tokens["ann"]}, headers=headers, follow_redirects=False)
    assert login.status_code == 403
    assert client.get("/api/stats").json()["per_annotator"] == {}


def test_same_origin_cookie_post_and_bearer_post_are_accepted(served):
    client, tokens, ids, _ = served
    log_in(client, tokens["ann"])
    body = {"group_id": ids[0], "label": "good"}
    assert client.post("/api/labels", json=body, headers=SAME_ORIGIN).status_code == 200
    client.cookies.clear()
    assert (
        client.post(
            "/api/labels", json={**body, "group_id": ids[1]}, headers=bearer(tokens["bob"])
        ).status_code
        == 200
    )
    evil = {**bearer(tokens["bob"]), "Origin": "http://evil.example"}
    assert client.post("/api/labels", json={**body, "group_id": ids[2]}, headers=evil).status_code == 403


def test_one_annotator_cannot_undo_another_annotators_labels(served):
    client, tokens, ids, _ = served
    ann, bob = bearer(tokens["ann"]), bearer(tokens["bob"])
    client.post("/api/labels", headers=ann, json={"group_id": ids[0], "label": "good"})
    assert client.post("/api/undo", headers=bob).status_code == 404
    assert client.post("/api/undo", headers=bob, json={"group_id": ids[0]}).status_code == 404
    assert client.get("/api/stats", headers=ann).json()["per_annotator"] == {"ann": {"good": 1}}
    assert client.post("/api/undo", headers=ann, json={"group_id": ids[0]}).json() == {"undone": ids[0]}
