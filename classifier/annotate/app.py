"""The FastAPI application of the web form: shared state, security middleware, the routes.

``create_app(run, cfg)`` opens (building on first start) the index, the label store and the queue,
then serves the JSON API (``api.py``) and the browser pages (``pages.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from classifier.annotate import api, pages
from classifier.annotate.agreement import agreement_summary
from classifier.annotate.auth import LoginRequiredError, cross_origin
from classifier.annotate.config import LabelConfig
from classifier.annotate.index import GroupIndex
from classifier.annotate.queue import LabelQueue, prepare_queue
from classifier.annotate.retrain import Retrainer, RetrainSettings
from classifier.annotate.store import LabelStore
from classifier.annotate.thumbs import ThumbnailCache

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@dataclass
class LabelState:
    """Everything a request needs; one per server process."""

    run: Path
    cfg: LabelConfig
    index: GroupIndex
    store: LabelStore
    queue: LabelQueue
    thumbs: ThumbnailCache
    order: str
    retrainer: Retrainer | None = None

    def group_view(self, group_id: str, annotator_id: int) -> dict[str, Any] | None:
        """A group as the page and the API show it: images in document order with their context."""
        group = self.index.group(group_id)
        if group is None:
            return None
        source = group["source"]
        images = [
            {"image_id": image_id, "url": f"/img/{image_id}", "position": position, **context}
            for image_id, position, context in zip(
                group["image_ids"], group["positions"], group["context"], strict=False
            )
        ]
        return {
            "group_id": group_id,
            "source": source,
            # a link only for web addresses: never a javascript: or file: URL from a document
            "source_url": source if urlsplit(source).scheme in ("http", "https") else None,
            "images": images,
            "your_label": self.store.value(annotator_id, group_id),
            "model_score": self.retrainer.score(group_id) if self.retrainer else None,
        }

    def progress(self, annotator_id: int) -> dict[str, int]:
        return {
            "labelled_by_you": self.store.n_labelled(annotator_id),
            "open_groups": self.store.open_count,
            "total_groups": len(self.index),
            "labels_per_group": self.cfg.labels_per_group,
        }

    def stats(self) -> dict[str, Any]:
        by_group = self.store.labels_by_group()
        complete = sum(len(labels) >= self.cfg.labels_per_group for labels in by_group.values())
        return {
            "groups": {
                "total": len(self.index),
                "labelled": len(by_group),
                "complete": complete,
                "open": self.store.open_count,
            },
            "labels_per_group": self.cfg.labels_per_group,
            "order": self.order,
            "per_annotator": self.store.counts(),
            "agreement": agreement_summary(by_group),
        }


def open_state(run: Path, cfg: LabelConfig, progress: Callable[[str], None] = print) -> LabelState:
    index = GroupIndex.open(run, cfg.context_chars, progress)
    store = LabelStore(run / "labels" / "labels.sqlite")
    order = prepare_queue(store, index, cfg, run, progress)
    queue = LabelQueue(store, cfg.labels_per_group, cfg.lease_seconds)
    retrainer = None
    if cfg.retrain_every > 0:
        settings = RetrainSettings(
            run, store.path, index.path, every=cfg.retrain_every, pool=cfg.retrain_pool, seed=cfg.seed
        )
        retrainer = Retrainer(settings, queue.set_priority, log=progress).start()
    return LabelState(
        run=run,
        cfg=cfg,
        index=index,
        store=store,
        queue=queue,
        thumbs=ThumbnailCache(run / "labels" / "thumbs", index, cfg.thumb_size),
        order=order,
        retrainer=retrainer,
    )


def create_app(run: Path, cfg: LabelConfig, progress: Callable[[str], None] = print) -> FastAPI:
    app = FastAPI(title="gdt labels", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.label = open_state(run, cfg, progress)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        reason = cross_origin(request)
        if reason is not None:
            response = JSONResponse({"detail": f"cross-site request refused: {reason}"}, status_code=403)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(LoginRequiredError)
    async def to_login(request: Request, exc: LoginRequiredError):
        return RedirectResponse("/login", status_code=303)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
