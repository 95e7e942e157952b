"""The eval page in a real browser (Playwright driving Debian's Chromium): images load, text stays text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from captioning.evaluate import run_eval
from tests.captioning.fake_openai import EVIL, FakeOpenAI
from tests.captioning.runs import build_run
from tests.captioning.test_evaluate import cfg_for

pytestmark = pytest.mark.integration


def test_eval_page_renders_images_and_escaped_captions(request, tmp_path):
    specs = [{"id": f"g{i}", "n": 2 + i, "alt": [f"[[g{i}]] photo"] + ["more"] * (1 + i)} for i in range(3)]
    run = build_run(tmp_path / "run", specs)
    script = {"g0": ["evil"], "g2": ["500", "500"]}  # generic: g0 evil text, g2 fails (2 tries)
    with FakeOpenAI(script) as server:
        result = run_eval(cfg_for(server.url, tmp_path), run, ["generic", "story"], sample=3)

    # Asked for only now: Playwright's event loop would stop run_eval's asyncio.run above.
    chromium = request.getfixturevalue("chromium")
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.goto(result.html_path.as_uri())
    page.wait_for_load_state("load")
    assert page.locator("#scores tr").count() == 3  # header + two templates
    assert page.locator("#pairs tr").count() == 2  # header + the one pair the judge compared
    for k, n in enumerate((2, 3, 4), start=1):
        images = page.locator(f"#group-{k} img")
        assert images.count() == n
        loaded = (
            "(sel) => Array.from(document.querySelectorAll(sel)).every(i => i.complete && i.naturalWidth)"
        )
        assert page.evaluate(loaded, f"#group-{k} img")
    assert page.evaluate("window.pwned") is None
    assert EVIL in page.inner_text("#group-1")
    assert "failed:" in page.inner_text("#group-3") and "500 server error" in page.inner_text("#group-3")
    assert "g2 picture 4 of 4" in page.inner_text("#group-3")  # story's captions for the same group
    # a vote per group, saved as votes.json (what the next eval counts)
    story = result.scores[1].template
    page.check(f'fieldset[data-group="g1"] input[value="{story}"]')
    page.check('fieldset[data-group="g2"] input[value="tie"]')
    with page.expect_download() as download:
        page.click("#save-votes")
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved == {"votes": [{"group_id": "g1", "winner": story}, {"group_id": "g2", "winner": "tie"}]}
    page.close()
