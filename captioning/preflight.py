"""One check of every caption server before a run: reachable, key accepted, model served.

Inputs: the openai backend's settings (base URLs, model, API key). Output: nothing, or a ``UserError``
naming the URL and what to change. A wrong ``--model``, key or URL then stops the run once at the start
instead of turning every group into a ``caption_failed`` drop. The context backend needs no server.
"""

from __future__ import annotations

import httpx

from captioning.backends.openai_http import OpenAIBackendConfig
from pipeline.errors import UserError

PREFLIGHT_TIMEOUT_S = 10.0


def check_server(url: str, model: str, api_key: str, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Raise ``UserError`` unless ``GET {url}/models`` answers and lists ``model``."""
    endpoint = url.rstrip("/") + "/models"
    try:
        reply = httpx.get(endpoint, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s)
    except httpx.HTTPError as err:
        raise UserError(
            f"caption server {url} cannot be reached ({err}); is `vllm serve` running there?"
        ) from err
    if reply.status_code in (401, 403):
        raise UserError(
            f"caption server {url} refused the API key ({reply.status_code}): set caption.api_key"
        )
    if reply.status_code != 200:
        raise UserError(
            f"caption server {url}: GET /models answered {reply.status_code}; "
            "is it an OpenAI-compatible /v1 URL?"
        )
    try:
        served = [m["id"] for m in reply.json()["data"]]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"caption server {url}: GET /models did not list models ({err})") from err
    if model not in served:
        raise UserError(f"caption server {url} serves {served}, not {model!r}: pass --model with one of them")


def preflight(backend: object) -> None:
    """Check every base URL of an openai backend; other backends need nothing."""
    cfg = getattr(backend, "cfg", None)
    if isinstance(cfg, OpenAIBackendConfig):
        for url in cfg.base_urls:
            check_server(url, cfg.model, cfg.api_key, min(cfg.timeout_s, PREFLIGHT_TIMEOUT_S))
