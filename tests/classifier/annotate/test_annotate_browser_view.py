"""The labelling view in a real browser: guidelines, review, zoom, layouts, save/fetch errors, prefetch."""

from __future__ import annotations

import json
import time
from collections import Counter
from itertools import combinations

import httpx
import pyarrow.parquet as pq
import pytest

from classifier.annotate.app import create_app
from classifier.annotate.auto import local_server
from classifier.annotate.config import LabelConfig
from classifier.annotate.store import LabelStore
from tests.classifier.annotate.browser import act, images_loaded, login, shown

pytestmark = pytest.mark.integration

GEOMETRY = """() => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {
    bar: box(document.querySelector('.bar')),
    cards: [...document.querySelectorAll('#images .card')].map(box),
    images: [...document.querySelectorAll('#images img')].map(box),
    width: window.innerWidth,
  };
}"""


@pytest.fixture
def new_page(chromium):
    pages = []

    def make(width: int = 1280, height: int = 800):
        page = chromium.new_page(viewport={"width": width, "height": height})
        page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()


def add(run, name: str, *flags: str, label_cli) -> str:
    result = label_cli("add-annotator", "--run", str(run), *flags, name)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def vote(run, votes: list[tuple[str, str, str]]) -> None:
    """Record (annotator, group, label) straight into the store, as earlier sessions would have."""
    store = LabelStore(run / "labels" / "labels.sqlite")
    for name, group_id, value in votes:
        store.record(store.annotator_id(name), group_id, value, "web", 2)
    store.close()


def test_guidelines_on_first_login_one_key_away_with_examples(
    tmp_path, make_run, label_cli, server_factory, new_page
):
    ids = make_run(tmp_path, 4)
    rules = tmp_path / "rules.md"
    rules.write_text("# Our rules\n\nA **good** group is one set. <script>window.pwned=1</script>\n")
    tokens = {n: add(tmp_path, n, label_cli=label_cli) for n in ("a", "b")}
    vote(tmp_path, [("a", ids[0], "good"), ("b", ids[0], "good"), ("a", ids[1], "bad")])
    server = server_factory(
        tmp_path,
        f"label.guidelines={rules}",
        "label.good_means=one set of pictures",
        "label.labels_per_group=2",
    )
    page = new_page()
    page.goto(f"{server.url}/login")
    page.fill("#token", tokens["a"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/guidelines")
    assert page.text_content(".markdown h1") == "Our rules"
    assert page.text_content(".markdown strong") == "good"
    assert "<script>window.pwned=1</script>" in page.text_content(".markdown")  # shown as text
    assert page.evaluate("window.pwned") is None
    # two annotators agree on ids[0]: an example; one annotator's bad label is none
    assert page.locator("#examples-good img").count() == 2
    assert page.locator("#examples-bad img").count() == 0
    page.wait_for_function(
        "() => [...document.querySelectorAll('#examples-good img')].every(i => i.naturalWidth > 0)"
    )
    page.keyboard.press("g")
    page.wait_for_url(f"{server.url}/")
    assert "one set of pictures" in page.text_content("#keys")
    page.keyboard.press("g")
    page.wait_for_url(f"{server.url}/guidelines")
    page.keyboard.press("g")
    page.wait_for_url(f"{server.url}/")
    page.click("text=Log out")
    page.fill("#token", tokens["a"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")  # seen once: the next login goes straight to labelling


def test_reviewer_sets_the_final_label_of_a_tie(tmp_path, make_run, label_cli, server_factory, new_page):
    ids = make_run(tmp_path, 4)
    for name in ("a", "b"):
        add(tmp_path, name, label_cli=label_cli)
    reviewer = add(tmp_path, "rev", "--reviewer", label_cli=label_cli)
    vote(
        tmp_path, [("a", ids[0], "good"), ("b", ids[0], "bad"), ("a", ids[1], "good"), ("b", ids[1], "good")]
    )
    server = server_factory(tmp_path, "label.labels_per_group=2")
    page = new_page()
    login(page, server.url, reviewer)
    page.click("nav >> text=Review")
    page.wait_for_url(f"{server.url}/review")
    items = page.locator(".review-item")
    assert items.count() == 1  # ids[1] is unanimous
    item = page.locator(f".review-item[data-group-id='{ids[0]}']")
    assert item.locator(".badge.tie").count() == 1
    assert item.locator(".votes li").all_text_contents() == ["good a", "bad b"]
    assert item.locator(".review-strip img").count() == 2
    item.locator("button", has_text="Final: bad").click()
    page.wait_for_url(f"{server.url}/review")
    assert page.locator(".review-item").count() == 0
    page.click("text=Show decided ones too")
    assert page.locator(f".review-item[data-group-id='{ids[0]}'] .final").text_content().split() == [
        "final:",
        "bad",
        "by",
        "rev",
    ]
    assert label_cli("export", "--run", str(tmp_path)).returncode == 0
    labels = {
        r["group_id"]: r["label"] for r in pq.read_table(tmp_path / "labels" / "labels.parquet").to_pylist()
    }
    assert labels == {ids[0]: "bad", ids[1]: "good"}


def test_zoom_shows_a_large_copy_and_the_full_context(
    tmp_path, make_run, label_cli, server_factory, new_page
):
    long = " ".join(f"word{i}" for i in range(80))
    make_run(tmp_path, 3, images_per_group=3, context=lambda g, j: {"alt": f"alt {j}", "text_before": long})
    token = add(tmp_path, "ann", label_cli=label_cli)
    server = server_factory(tmp_path)
    page = new_page()
    login(page, server.url, token)
    first = page.locator("#images .card").first
    clipped = first.locator(".before")
    assert clipped.text_content() == long
    assert clipped.evaluate("p => p.scrollWidth > p.clientWidth")  # on the card: one line, cut
    small = first.locator("img").bounding_box()
    first.locator("img").click()
    zoom = page.locator("#zoom")
    assert zoom.is_visible()
    image_id = page.evaluate("document.querySelector('#images .zoomable').dataset.zoom").rsplit("/", 1)[1]
    page.wait_for_function("() => document.getElementById('zoom-img').complete")
    assert page.get_attribute("#zoom-img", "src") == f"/zoom/{image_id}"
    assert page.evaluate("document.getElementById('zoom-img').naturalWidth") > 0
    large = page.locator("#zoom-img").bounding_box()
    assert large["width"] > small["width"] and large["height"] > small["height"]
    assert page.text_content("#zoom-before") == long and page.locator("#zoom-before").is_visible()
    page.keyboard.press("Escape")
    assert not zoom.is_visible()
    page.keyboard.press("3")
    assert zoom.is_visible() and page.text_content("#zoom-pos").startswith("3 ·")
    before = shown(page)
    act(page, lambda: page.keyboard.press("a"))  # a label key closes the zoom and labels
    assert not zoom.is_visible() and shown(page) != before


@pytest.mark.parametrize("n_images", [6, 8])
def test_layouts_fit_the_viewport_above_the_button_bar(
    tmp_path, make_run, label_cli, server_factory, new_page, n_images
):
    make_run(tmp_path, 3, images_per_group=n_images, n_image_pool=16)
    token = add(tmp_path, "ann", label_cli=label_cli)
    server = server_factory(tmp_path)
    page = new_page(1366, 768)
    login(page, server.url, token)
    smallest = {}
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_function(f"() => window.innerWidth === {width}")
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        geometry = page.evaluate(GEOMETRY)
        bar_top = geometry["bar"][1]
        cards = geometry["cards"]
        assert len(cards) == n_images
        for left, top, right, bottom in cards:
            assert top >= 0 and left >= 0 and right <= geometry["width"], (width, cards)
            assert bottom <= bar_top, (width, bottom, bar_top)  # nothing hides under the bar
        for a, b in combinations(cards, 2):
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
        sides = [min(r - left, bottom - top) for left, top, r, bottom in geometry["images"]]
        assert min(sides) >= 120, (width, sides)
        smallest[width] = min(sides)
    assert smallest[1920] > smallest[1366] * 1.2  # images grow with the screen


def test_a_saved_label_is_not_reported_unsaved_when_the_next_group_fails(
    tmp_path, make_run, label_cli, server_factory, new_page
):
    make_run(tmp_path, 5)
    token = add(tmp_path, "ann", label_cli=label_cli)
    server = server_factory(tmp_path)
    page = new_page()
    login(page, server.url, token)
    history = lambda: httpx.get(  # noqa: E731
        f"{server.url}/api/history", headers={"Authorization": f"Bearer {token}"}
    ).json()["history"]
    first = shown(page)

    page.route("**/api/labels", lambda route: route.abort())
    page.keyboard.press("x")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error").startswith("Not saved") and history() == []
    page.unroute("**/api/labels")

    page.route("**/api/next", lambda route: route.abort())
    page.keyboard.press("a")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error").startswith("Saved, but the next group could not be loaded")
    assert page.locator("#retry").is_visible()
    assert [(r["group_id"], r["label"]) for r in history()] == [(first, "good")]
    assert geometry_ok(page)
    page.unroute("**/api/next")
    second = act(page, lambda: page.keyboard.press("r"))
    assert second != first and not page.locator("#error").is_visible()
    assert not page.locator("#retry").is_visible()


def geometry_ok(page) -> bool:
    """The cards still stay above the bar, which grew by the error message."""
    geometry = page.evaluate(GEOMETRY)
    return all(bottom <= geometry["bar"][1] for *_, bottom in geometry["cards"])


def test_the_next_groups_images_come_from_the_browser_cache(tmp_path, make_run, new_page):
    make_run(tmp_path, 6, n_image_pool=40)
    app = create_app(tmp_path, LabelConfig(), progress=lambda _: None)
    token = app.state.label.store.add_annotator("ann")
    hits: Counter[str] = Counter()

    async def counted(scope, receive, send):  # the real app; every request it serves is counted
        if scope["type"] == "http":
            hits[scope["path"]] += 1
        await app(scope, receive, send)

    with local_server(counted) as url:
        page = new_page()
        login(page, url, token)
        data = json.loads(page.text_content("#page-data"))
        upcoming = [image["url"] for image in data["upcoming"]["images"]]
        current = {
            p.split("?")[0] for p in page.eval_on_selector_all("#images img", "i => i.map(x => x.src)")
        }
        assert upcoming and not set(upcoming) <= {c.removeprefix(url) for c in current}
        deadline = time.monotonic() + 30
        while not all(hits[p] for p in upcoming) and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        served_before = {p: hits[p] for p in upcoming}
        assert all(served_before.values())  # fetched while the first group was on screen

        act(page, lambda: page.keyboard.press("a"))
        page.wait_for_function(
            "() => [...document.querySelectorAll('#images img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        shown_now = [
            s.removeprefix(url) for s in page.eval_on_selector_all("#images img", "i => i.map(x => x.src)")
        ]
        assert shown_now == upcoming
        assert images_loaded(page)
        assert {p: hits[p] for p in upcoming} == served_before  # no second request: the browser cache
