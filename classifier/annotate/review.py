"""Review of disagreements: reviewers see every annotator's answer and set a group's final label.

Data: ``decisions`` in ``labels.sqlite`` (append-only like label events: each decision, and each
withdrawal of one, is its own row; the latest per group counts). Routes: the reviewer page
``GET /review`` with ``POST /review`` (plain forms, so it works without script), and the JSON API
``GET /api/review`` and ``POST /api/review``. Only annotators with the ``reviewer`` role get in.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from classifier.annotate.agreement import majority
from classifier.annotate.auth import Annotator, require_reviewer_api, require_reviewer_page
from classifier.annotate.pages import templates
from classifier.annotate.store import LabelStore

router = APIRouter()
PAGE_SIZE = 50


def record_decision(store: LabelStore, reviewer_id: int, group_id: str, value: str) -> None:
    """Set (``good``/``bad``) or withdraw (``retract``) the final label of a group."""
    if value not in ("good", "bad", "retract"):
        raise ValueError(f"a decision is good, bad or retract, not {value!r}")
    with store.transaction() as db:
        db.execute(
            "INSERT INTO decisions (reviewer_id, group_id, value, at) VALUES (?, ?, ?, ?)",
            (reviewer_id, group_id, value, time.time()),
        )


def final_labels(store: LabelStore) -> dict[str, dict[str, Any]]:
    """{group_id: {"label", "reviewer", "at"}} of groups whose latest decision is not withdrawn."""
    rows = store.query(
        "SELECT d.group_id, d.value, a.name, d.at FROM decisions d JOIN annotators a ON a.id = d.reviewer_id "
        "WHERE d.id IN (SELECT max(id) FROM decisions GROUP BY group_id)"
    )
    return {g: {"label": v, "reviewer": name, "at": at} for g, v, name, at in rows if v != "retract"}


def disagreements(store: LabelStore, include_decided: bool = True) -> list[dict[str, Any]]:
    """Groups whose annotators' good/bad labels differ, undecided ties first, then other undecided
    groups, then decided ones; each with every annotator's answer and the final label if any."""
    finals = final_labels(store)
    out = []
    for group_id, votes in store.labels_by_group().items():
        if len(set(votes.values())) < 2:
            continue
        final = finals.get(group_id)
        if final is not None and not include_decided:
            continue
        label, agreement = majority(votes.values())
        out.append(
            {
                "group_id": group_id,
                "votes": dict(sorted(votes.items())),
                "majority": label,
                "agreement": agreement,
                "tie": label == "tie",
                "final": final["label"] if final else None,
                "reviewer": final["reviewer"] if final else None,
            }
        )
    out.sort(key=lambda r: (r["final"] is not None, not r["tie"], r["group_id"]))
    return out


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_id: str = Field(min_length=1, max_length=300)
    label: Literal["good", "bad", "retract"]


def _decide(request: Request, reviewer: Annotator, group_id: str, label: str) -> None:
    state = request.app.state.label
    if not state.index.has_group(group_id):
        raise HTTPException(404, f"no group {group_id!r} in this run")
    record_decision(state.store, reviewer.id, group_id, label)


@router.get("/api/review")
def get_review(request: Request, reviewer: Annotator = Depends(require_reviewer_api)) -> dict[str, Any]:
    return {"groups": disagreements(request.app.state.label.store)}


@router.post("/api/review")
def post_review(
    body: DecisionIn, request: Request, reviewer: Annotator = Depends(require_reviewer_api)
) -> dict[str, Any]:
    _decide(request, reviewer, body.group_id, body.label)
    return {"group_id": body.group_id, "final": None if body.label == "retract" else body.label}


@router.get("/review")
def review_page(
    request: Request,
    page: int = 0,
    decided: bool = False,
    reviewer: Annotator = Depends(require_reviewer_page),
):
    state = request.app.state.label
    rows = disagreements(state.store, include_decided=decided)
    shown = rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    for row in shown:
        group = state.group_view(row["group_id"], reviewer.id)
        row["images"] = group["images"] if group else []
        row["source"] = group["source"] if group else ""
    return templates.TemplateResponse(
        request,
        "review.html",
        {
            "annotator": reviewer,
            "rows": shown,
            "total": len(rows),
            "page": page,
            "pages": max(1, -(-len(rows) // PAGE_SIZE)),
            "decided": decided,
        },
    )


@router.post("/review")
def review_form(
    request: Request,
    group_id: str = Form(..., max_length=300),
    label: Literal["good", "bad", "retract"] = Form(...),
    back: str = Form("/review", max_length=300),
    reviewer: Annotator = Depends(require_reviewer_page),
):
    _decide(request, reviewer, group_id, label)
    # back to the list the form came from; only a path of this site, never another address
    target = back if back.startswith("/review") else "/review"
    return RedirectResponse(target, status_code=303)
