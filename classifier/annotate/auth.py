"""Who is asking, and may they change anything: bearer tokens, the session cookie, the origin check.

API clients send ``Authorization: Bearer TOKEN``; a browser logs in once and then sends a session id
(``sessions.py``, never the token) in an HttpOnly, SameSite=Strict cookie. State-changing requests
are refused (403) when their Origin (or, lacking it, Referer) is another site, and a
cookie-authenticated one must carry such a header: this is the CSRF defence, on top of SameSite.
Reviewer pages and routes need an annotator with the ``reviewer`` role.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

COOKIE = "gdt_label_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str
    role: str = "annotator"

    @property
    def is_reviewer(self) -> bool:
        return self.role == "reviewer"


class LoginRequiredError(Exception):
    """A browser page was asked for without a valid login: answered with a redirect to /login."""


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def identify(request: Request) -> Annotator | None:
    state = request.app.state.label
    token = bearer_token(request)
    if token:
        found = state.store.authenticate(token)
    else:
        session_id = request.cookies.get(COOKIE)
        found = state.sessions.lookup(session_id) if session_id else None
    return Annotator(*found) if found else None


def require_api(request: Request) -> Annotator:
    annotator = identify(request)
    if annotator is None:
        raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})
    return annotator


def require_page(request: Request) -> Annotator:
    annotator = identify(request)
    if annotator is None:
        raise LoginRequiredError
    return annotator


def require_reviewer_api(request: Request) -> Annotator:
    annotator = require_api(request)
    if not annotator.is_reviewer:
        raise HTTPException(403, "reviewers only (gdt label add-annotator --reviewer)")
    return annotator


def require_reviewer_page(request: Request) -> Annotator:
    annotator = require_page(request)
    if not annotator.is_reviewer:
        raise HTTPException(403, "reviewers only")
    return annotator


def cross_origin(request: Request) -> str | None:
    """Why an unsafe request must be refused as cross-site, or None when it may go on."""
    if request.method not in UNSAFE_METHODS:
        return None
    claimed = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host", "")
    if claimed is None:
        # scripts authenticate with a bearer header, which a browser never adds cross-site by itself
        return None if bearer_token(request) else "a browser request without Origin or Referer"
    if claimed == "null" or urlsplit(claimed).netloc.lower() != host.lower():
        return f"origin {claimed!r} is not this server ({host})"
    return None
