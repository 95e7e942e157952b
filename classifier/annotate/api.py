"""The JSON API shared by the page and by scripts (``Authorization: Bearer TOKEN`` or the cookie).

GET /api/next, POST /api/labels, POST /api/undo, GET /api/stats, GET /api/history, and the
thumbnail route GET /img/{image_id}.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from classifier.annotate.auth import Annotator, require_api

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


def next_payload(state, annotator: Annotator) -> dict[str, Any]:
    group_id = state.queue.next(annotator.id)
    return {
        "group": state.group_view(group_id, annotator.id) if group_id else None,
        "progress": state.progress(annotator.id),
        "recent": state.store.history(annotator.id, limit=5),
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


@router.get("/img/{image_id}")
async def get_image(image_id: str, request: Request, annotator: Annotator = Depends(require_api)):
    try:
        path = await run_in_threadpool(_state(request).thumbs.path, image_id)
    except OSError as error:  # Pillow cannot decode the stored bytes
        raise HTTPException(415, f"image cannot be decoded: {error}") from error
    if path is None:
        raise HTTPException(404, "no such image in this run")
    # content-addressed: an id always names the same picture
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
