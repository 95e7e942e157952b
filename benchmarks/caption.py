"""Caption client throughput against local OpenAI-compatible servers with a fixed latency and a cap.

Each server (its own process, uvicorn) answers every chat request after ``latency`` seconds and runs at
most ``cap`` requests at once (the rest wait, like vLLM's running-batch limit), so its capacity is
cap / latency requests per second. The openai backend, with its default settings, captions groups of
2-4 real photos through one or several such servers; the ratio is groups per second reached over the
servers' total capacity. Goal (issue 4): >= 0.9 of capacity with the defaults.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing as mp
import socket
import time

import httpx
from PIL import Image
from skimage import data as skdata

from benchmarks.common import write_result
from captioning.backends.base import GroupRequest, ImageContext, caption_all
from captioning.backends.openai_http import OpenAIBackendConfig, OpenAICaptioner
from captioning.templates import load_templates

# (servers, cap per server, latency s, groups)
SCENARIOS = [(1, 16, 0.5, 480), (1, 32, 0.5, 960), (2, 16, 0.5, 960), (1, 64, 1.0, 960)]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")


def _serve(port: int, latency: float, cap: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state: dict[str, asyncio.Semaphore] = {}

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "bench", "object": "model"}]})

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        n = sum(1 for p in body["messages"][-1]["content"] if p.get("type") == "image_url")
        gate = state.setdefault("gate", asyncio.Semaphore(cap))
        async with gate:
            await asyncio.sleep(latency)
        reply = {"captions": [f"photo {i + 1} of {n}" for i in range(n)], "group_caption": f"{n} photos"}
        return JSONResponse(
            {
                "id": "bench",
                "object": "chat.completion",
                "created": 0,
                "model": "bench",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": json.dumps(reply)},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    app = Starlette(
        routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"benchmark server {url} did not start")


def _photo(name: str) -> bytes:
    img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    img.thumbnail((256, 256))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _requests(count: int) -> list[GroupRequest]:
    photos = [_photo(p) for p in PHOTOS]
    template = load_templates()["generic"]
    out = []
    for k in range(count):
        n = 2 + k % 3
        images = tuple(photos[(k + i) % len(photos)] for i in range(n))
        context = tuple(ImageContext(alt=f"photo {i}") for i in range(n))
        out.append(GroupRequest(f"g{k}", images, context, "a benchmark document", template))
    return out


def measure(servers: int, cap: int, latency: float, groups: int) -> dict[str, float]:
    ports = [_free_port() for _ in range(servers)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_serve, args=(p, latency, cap), daemon=True) for p in ports]
    for proc in procs:
        proc.start()
    urls = [f"http://127.0.0.1:{p}/v1" for p in ports]
    try:
        for url in urls:
            _wait_ready(url)
        backend = OpenAICaptioner(OpenAIBackendConfig(base_urls=urls, model="bench"))  # defaults otherwise
        requests = _requests(groups)
        started = time.perf_counter()
        outcomes = caption_all(backend, requests)
        seconds = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(timeout=10)
    failed = sum(not o.ok for o in outcomes)
    if failed:
        raise RuntimeError(
            f"{failed} of {groups} groups failed: {next(o.error for o in outcomes if not o.ok)}"
        )
    capacity = servers * cap / latency
    rate = groups / seconds
    return {"capacity": capacity, "rate": rate, "ratio": rate / capacity, "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    defaults = OpenAIBackendConfig(base_urls=["http://x"], model="m")
    rows = [
        "| servers | cap / server | latency | groups | capacity (groups/s) | reached (groups/s) | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for servers, cap, latency, groups in SCENARIOS:
        r = measure(servers, cap, latency, groups)
        rows.append(
            f"| {servers} | {cap} | {latency:.1f} s | {groups} | {r['capacity']:.1f} | {r['rate']:.1f} "
            f"| **{r['ratio']:.2f}** |"
        )
    body = (
        "`python -m benchmarks.caption`: the openai caption backend with its default settings "
        f"(concurrency {defaults.concurrency_per_server} per server, {defaults.balance}, images resized to "
        f"{defaults.max_side} px) against local servers with a fixed latency and a concurrency cap; groups "
        "of 2-4 real photos (256 px JPEG). Capacity = servers x cap / latency. Goal: ratio >= 0.9.\n\n"
        + "\n".join(rows)
    )
    write_result("caption", "Captioning client throughput vs server capacity", body)


if __name__ == "__main__":
    main()
