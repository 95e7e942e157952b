"""The browser pages: login (a session cookie, throttled), the labelling page, history, stats.

Pages are Jinja2 templates with autoescaping on: document text is always shown as text. The label
page renders its first group on the server; ``static/label.js`` then labels and loads the next group
through the JSON API without reloading.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from classifier.annotate.api import next_payload
from classifier.annotate.auth import COOKIE, Annotator, require_page

router = APIRouter()
templates = Jinja2Templates(
    env=Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request):
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login")
def login(request: Request, token: str = Form(..., max_length=200)):
    state = request.app.state.label
    client = request.client.host if request.client else "?"
    wait = state.throttle.retry_after(client)
    if wait > 0:
        error = f"Too many failed logins: try again in {math.ceil(wait)} s."
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": error},
            status_code=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    found = state.store.authenticate(token.strip())
    if found is None:
        state.throttle.failed(client)
        return templates.TemplateResponse(request, "login.html", {"error": "Unknown token."}, status_code=401)
    annotator = Annotator(*found)
    first_page = "/guidelines" if state.guidelines_unseen(annotator.id) else "/"
    response = RedirectResponse(first_page, status_code=303)
    response.set_cookie(
        COOKIE,
        state.sessions.create(annotator.id),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=int(state.cfg.session_hours * 3600),
    )
    return response


@router.post("/logout")
def logout(request: Request):
    session_id = request.cookies.get(COOKIE)
    if session_id:
        request.app.state.label.sessions.revoke(session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def label_page(request: Request, group: str | None = None, annotator: Annotator = Depends(require_page)):
    state = request.app.state.label
    data = next_payload(state, annotator)
    if group is not None:  # relabelling one group from the history page
        view = state.group_view(group, annotator.id)
        if view is not None and data["group"] is not None and view["group_id"] != data["group"]["group_id"]:
            data["upcoming"] = data["group"]  # after this one, the queue goes on with its own
        data["group"] = view if view is not None else data["group"]
    cfg = state.cfg
    words = {"good": cfg.good_means, "bad": cfg.bad_means, "skip": cfg.skip_means}
    return templates.TemplateResponse(request, "label.html", {"annotator": annotator, "words": words, **data})


@router.get("/history", response_class=HTMLResponse)
def history_page(request: Request, annotator: Annotator = Depends(require_page)):
    state = request.app.state.label
    rows = state.store.history(annotator.id, limit=200)
    for row in rows:
        group = state.index.group(row["group_id"])
        row["image_ids"] = group["image_ids"][:4] if group else []
        row["when"] = datetime.fromtimestamp(row["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    return templates.TemplateResponse(
        request,
        "history.html",
        {"annotator": annotator, "rows": rows, "progress": state.progress(annotator.id)},
    )


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, annotator: Annotator = Depends(require_page)):
    state = request.app.state.label
    return templates.TemplateResponse(request, "stats.html", {"annotator": annotator, "stats": state.stats()})
