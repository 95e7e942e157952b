"""The JSON API shared by the page and by scripts (``Authorization: Bearer TOKEN`` or the cookie).

GET /api/next, POST /api/labels, POST /api/undo, GET /api/stats, GET /api/history, and the image
routes GET /img/{image_id} (thumbnail) and GET /zoom/{image_id} (a large copy, for click-to-zoom).
``/api/next`` also sends the group that will probably come after the one it hands out
(``upcoming``), so that the page can load its images while the annotator is still looking.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from classifier.annotate.auth import Annotator, require_api
from classifier.annotate.queue import NEXT_SQL

router = APIRouter()


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_id: str = Field(min_length=1, max_length=300)
    label: Literal["good", "bad", "skip"]


class UndoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_id: str | None = Field(None, min_length=1, max_length=300)


def _state(request: Request):
    return request.app.state.label


def upcoming(state, annotator_id: int, group_id: str) -> dict[str, Any] | None:
    """A guess at the group after ``group_id``: the retrainer's next pick, else the next open one in
    queue order that the annotator has not labelled. Only a hint, for the page to load its images and
    show it at once on the next key press: it takes no lease, and the queue may still hand out another
    (one leased meanwhile, or after a re-ranking); the page then shows the queue's choice a moment
    later."""
    picked = state.queue.upcoming(annotator_id, group_id)
    if picked is not None:
        return state.group_view(picked, annotator_id)
    pos = state.store.query("SELECT pos FROM queue WHERE group_id = ?", (group_id,))
    if not pos:
        return None
    for _, candidate, _ in state.store.query(NEXT_SQL, (pos[0][0] + 1, annotator_id, 1)):
        return state.group_view(candidate, annotator_id)
    return None


def recent(state, annotator_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The annotator's latest labels with the first images of each group, for the sidebar."""
    rows = state.store.history(annotator_id, limit=limit)
    for row in rows:
        group = state.index.group(row["group_id"])
        row["image_urls"] = [f"/img/{i}" for i in group["image_ids"][:3]] if group else []
    return rows


def next_payload(state, annotator: Annotator) -> dict[str, Any]:
    group_id = state.queue.next(annotator.id)
    return {
        "group": state.group_view(group_id, annotator.id) if group_id else None,
        "upcoming": upcoming(state, annotator.id, group_id) if group_id else None,
        "progress": state.progress(annotator.id),
        "recent": recent(state, annotator.id),
    }


@router.get("/api/next")
def get_next(request: Request, annotator: Annotator = Depends(require_api)) -> dict[str, Any]:
    return next_payload(_state(request), annotator)


@router.post("/api/labels")
def post_label(
    body: LabelIn, request: Request, annotator: Annotator = Depends(require_api)
) -> dict[str, Any]:
    state = _state(request)
    if not state.index.has_group(body.group_id):
        raise HTTPException(404, f"no group {body.group_id!r} in this run")
    changed = state.store.record(annotator.id, body.group_id, body.label, "web", state.cfg.labels_per_group)
    state.queue.done(annotator.id, body.group_id)
    if state.retrainer is not None:
        state.retrainer.notify()
    return {"group_id": body.group_id, "label": body.label, "changed": changed}


@router.post("/api/undo")
def post_undo(
    request: Request, body: UndoIn | None = None, annotator: Annotator = Depends(require_api)
) -> dict[str, Any]:
    state = _state(request)
    wanted = body.group_id if body else None
    undone = state.store.undo(annotator.id, state.cfg.labels_per_group, wanted)
    if undone is None:
        detail = "nothing to undo" if wanted is None else f"you have no label of group {wanted!r}"
        raise HTTPException(404, detail)
    state.queue.give_back(annotator.id, undone)
    return {"undone": undone}


@router.get("/api/stats")
def get_stats(request: Request, annotator: Annotator = Depends(require_api)) -> dict[str, Any]:
    return _state(request).stats()


@router.get("/api/history")
def get_history(request: Request, annotator: Annotator = Depends(require_api)) -> dict[str, Any]:
    return {"history": _state(request).store.history(annotator.id, limit=200)}


async def _image(cache, image_id: str) -> FileResponse:
    try:
        path = await run_in_threadpool(cache.path, image_id)
    except OSError as error:  # Pillow cannot decode the stored bytes
        raise HTTPException(415, "image cannot be decoded") from error
    if path is None:
        raise HTTPException(404, "no such image in this run")
    # content-addressed: an id always names the same picture
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/img/{image_id}")
async def get_image(image_id: str, request: Request, annotator: Annotator = Depends(require_api)):
    return await _image(_state(request).thumbs, image_id)


@router.get("/zoom/{image_id}")
async def get_zoom(image_id: str, request: Request, annotator: Annotator = Depends(require_api)):
    return await _image(_state(request).zoom_thumbs, image_id)
