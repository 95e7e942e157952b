"""A real browser (Playwright driving Debian's Chromium) against a real server process."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tests.classifier.annotate.browser import act, login, shown

EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'

pytestmark = pytest.mark.integration


@pytest.fixture
def browser_page(chromium):
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    yield page
    page.close()


def test_label_with_keyboard_and_mouse_undo_reload_export(
    tmp_path, make_run, server_factory, label_cli, browser_page
):
    make_run(tmp_path, 8)
    token = label_cli("add-annotator", "--run", str(tmp_path), "ann").stdout.strip()
    server = server_factory(tmp_path)
    page = browser_page
    login(page, server.url, token)
    assert page.evaluate(
        "[...document.querySelectorAll('#images img')].every(i => i.complete && i.naturalWidth > 0)"
    )

    given = {}
    g1 = shown(page)
    g2 = act(page, lambda: page.keyboard.press("a"))
    given[g1] = "good"
    g3 = act(page, lambda: page.keyboard.press("x"))
    given[g2] = "bad"
    g4 = act(page, lambda: page.click("button.good"))
    given[g3] = "good"
    g5 = act(page, lambda: page.keyboard.press(" "))  # skip: not exported
    g6 = act(page, lambda: page.click("button.bad"))
    given[g5] = "bad"
    assert act(page, lambda: page.keyboard.press("u")) == g5  # undo brings the group back
    del given[g5]
    assert act(page, lambda: page.keyboard.press("a")) == g6
    given[g5] = "good"
    assert act(page, lambda: page.keyboard.press("Backspace")) == g5
    del given[g5]
    assert len({g1, g2, g3, g4, g5, g6}) == 6

    page.reload()
    assert shown(page) == g5  # the undone group is still the one waiting
    assert page.text_content("#mine") == "3"  # g1..g3: a skip is no label
    assert page.text_content("#skipped") == "1"
    assert page.locator("#recent li").count() == 4
    assert page.locator("#recent li img").count() == 8  # each with its group's thumbnails

    result = label_cli("export", "--run", str(tmp_path))
    assert result.returncode == 0, result.stderr
    exported = pq.read_table(tmp_path / "labels" / "labels.parquet").to_pylist()
    assert {r["group_id"]: r["label"] for r in exported} == given
    assert {r["n_annotators"] for r in exported} == {1}


def test_anonymous_browser_gets_the_login_page_and_a_wrong_token_is_refused(
    tmp_path, make_run, server_factory, browser_page
):
    make_run(tmp_path, 2)
    server = server_factory(tmp_path)
    page = browser_page
    for path in ("/", "/history", "/stats"):
        page.goto(f"{server.url}{path}")
        assert page.url == f"{server.url}/login"
    page.fill("#token", "wrong-token")
    page.click("button[type=submit]")
    assert page.locator(".error").text_content() == "Unknown token."


def test_script_and_onerror_in_document_text_stay_inert(
    tmp_path, make_run, server_factory, label_cli, browser_page
):
    make_run(
        tmp_path, 3, context=lambda g, j: {"alt": EVIL, "text_before": EVIL, "text_after": f"after {EVIL}"}
    )
    token = label_cli("add-annotator", "--run", str(tmp_path), "ann").stdout.strip()
    server = server_factory(tmp_path)
    page = browser_page
    login(page, server.url, token)
    for _ in range(2):  # first group rendered by the server, the next one by label.js
        assert page.evaluate("window.pwned") is None
        assert page.locator("#images .before").first.text_content() == EVIL
        assert page.locator("#images .alt").first.text_content() == EVIL
        assert page.locator("#images script").count() == 0
        assert page.locator("#images img").count() == 2  # only the thumbnails, no injected <img>
        act(page, lambda: page.keyboard.press("a"))
    page.wait_for_timeout(200)
    assert page.evaluate("window.pwned") is None
