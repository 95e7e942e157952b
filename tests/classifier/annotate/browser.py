"""Helpers of the browser tests: log in as an annotator, see which group the page shows, act and wait.

Predicates for ``page.wait_for_function`` are always arrow functions: Playwright polls a bare expression
through ``eval`` in the page, which the form's Content-Security-Policy refuses once a poll is needed."""

from __future__ import annotations


def shown(page) -> str:
    return page.get_attribute("#group", "data-group-id")


def act(page, action) -> str:
    """Press a key or click, wait until the page shows another group; returns the new group id."""
    before = shown(page)
    action()
    page.wait_for_function("(old) => document.getElementById('group').dataset.groupId !== old", arg=before)
    return shown(page)


def login(page, url: str, token: str) -> None:
    """Log in; the first login shows the guidelines, and g leads on to the labelling page."""
    page.goto(f"{url}/")
    assert page.url == f"{url}/login"
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/guidelines")
    page.keyboard.press("g")
    page.wait_for_url(f"{url}/")


def images_loaded(page) -> bool:
    return page.evaluate(
        "[...document.querySelectorAll('#images img')].every(i => i.complete && i.naturalWidth > 0)"
    )
