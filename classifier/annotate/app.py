"""The FastAPI application of the web form: shared state, security middleware, the routes.

``create_app(run, cfg)`` opens (building on first start) the index, the label store and the queue,
then serves the JSON API (``api.py``), the browser pages (``pages.py``), the guidelines
(``guidelines.py``) and the reviewers' page (``review.py``). Before any route runs, a
request must name an allowed Host (DNS rebinding) and carry at most ``max_body_bytes`` (413 without
reading the rest); then the origin check of ``auth.py`` applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from classifier.annotate import api, guidelines, pages, review
from classifier.annotate.auth import LoginRequiredError, cross_origin
from classifier.annotate.config import LabelConfig
from classifier.annotate.guidelines import Guidelines
from classifier.annotate.index import GroupIndex
from classifier.annotate.queue import LabelQueue, prepare_queue
from classifier.annotate.retrain import Retrainer, RetrainSettings
from classifier.annotate.sessions import LoginThrottle, SessionStore
from classifier.annotate.stats import run_stats
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
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(cfg: LabelConfig) -> list[str]:
    """Host header values the server answers to: loopback, ``cfg.host`` (unless a wildcard) and the
    configured names."""
    names = [*LOOPBACK_NAMES, *cfg.allowed_hosts]
    if cfg.host not in ("0.0.0.0", "::", ""):
        names.append(cfg.host)
    return list(dict.fromkeys(name.lower() for name in names))


def shown_source(source: str) -> tuple[str, str | None]:
    """(text, link) of a document source for annotators: web addresses in full, as a link; anything
    else (a file on the server) by its file name only, so the server's folders are never shown."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https"):
        return source, source
    path = parts.path if parts.scheme == "file" else source
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "(local file)", None


@dataclass
class LabelState:
    """Everything a request needs; one per server process."""

    run: Path
    cfg: LabelConfig
    index: GroupIndex
    store: LabelStore
    queue: LabelQueue
    thumbs: ThumbnailCache
    zoom_thumbs: ThumbnailCache
    order: str
    sessions: SessionStore
    throttle: LoginThrottle
    guidelines: Guidelines

    def guidelines_unseen(self, annotator_id: int) -> bool:
        """True until the annotator has opened the current guidelines (again after they change)."""
        return self.store.guidelines_seen(annotator_id) != self.guidelines.digest

    retrainer: Retrainer | None = None

    def group_view(self, group_id: str, annotator_id: int) -> dict[str, Any] | None:
        """A group as the page and the API show it: images in document order with their context."""
        group = self.index.group(group_id)
        if group is None:
            return None
        source, link = shown_source(group["source"])
        images = [
            {
                "image_id": image_id,
                "url": f"/img/{image_id}",
                "zoom_url": f"/zoom/{image_id}",
                "position": position,
                **context,
            }
            for image_id, position, context in zip(
                group["image_ids"], group["positions"], group["context"], strict=False
            )
        ]
        return {
            "group_id": group_id,
            "source": source,
            # a link only for web addresses: never a javascript: or file: URL from a document
            "source_url": link,
            "images": images,
            "your_label": self.store.value(annotator_id, group_id),
            "model_score": self.retrainer.score(group_id) if self.retrainer else None,
        }

    def progress(self, annotator_id: int) -> dict[str, int]:
        return {
            "labelled_by_you": self.store.n_labelled(annotator_id),
            "skipped_by_you": self.store.n_skipped(annotator_id),
            "open_groups": self.store.open_count,
            "total_groups": len(self.index),
            "labels_per_group": self.cfg.labels_per_group,
        }

    def stats(self) -> dict[str, Any]:
        stats = run_stats(self.store, len(self.index), self.cfg.labels_per_group, self.order)
        stats["retrainer"] = self.retrainer.status() if self.retrainer else None
        return stats


def open_state(run: Path, cfg: LabelConfig, progress: Callable[[str], None] = print) -> LabelState:
    rules = Guidelines.load(cfg.guidelines)  # first: a wrong path fails before any index is built
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
        zoom_thumbs=ThumbnailCache(run / "labels" / "thumbs" / "zoom", index, cfg.zoom_size),
        order=order,
        sessions=SessionStore(store, cfg.session_hours * 3600),
        throttle=LoginThrottle(cfg.login_attempts, cfg.login_window_seconds),
        guidelines=rules,
        retrainer=retrainer,
    )


def create_app(run: Path, cfg: LabelConfig, progress: Callable[[str], None] = print) -> FastAPI:
    app = FastAPI(
        title="gdt labels", docs_url=None, redoc_url=None, openapi_url=None, max_body_size=cfg.max_body_bytes
    )
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

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # what was wrong and where, never the request's own input echoed back
        errors = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(guidelines.router)
    app.include_router(review.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # added last, so it runs first: a request for another host name is refused before anything else
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(cfg), www_redirect=False)
    return app
