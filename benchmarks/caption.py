"""Caption throughput against local OpenAI-compatible servers with a fixed latency and a cap.

Each server (its own process, uvicorn) answers every chat request after ``latency`` seconds and runs at
most ``cap`` requests at once (the rest wait, like vLLM's running batch at ``--max-num-seqs``), so its
capacity is cap / latency requests per second. Two measurements of the openai backend with its default
settings (128 requests in flight per server), captioning groups of 2-4 real photos:

- the caption stage itself (``gdt caption``: planning, kinds, Ray actors running several parts each,
  parquet parts, manifest) on a run folder of synthetic groups; the rate is taken over the window in
  which the servers were busy (first request in to last reply out) and over the stage's whole wall time
  (Ray start-up and planning included);
- the client alone (``caption_all`` in one process), for comparison.
Goal (issue 16): the stage reaches >= 0.9 of capacity at 128 in flight per server.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import multiprocessing as mp
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
from PIL import Image
from skimage import data as skdata

from benchmarks.common import write_result
from captioning.backends.base import GroupRequest, ImageContext, caption_all
from captioning.backends.openai_http import OpenAIBackendConfig, OpenAICaptioner
from captioning.templates import load_templates
from manifests.ledger import commit_external, write_parquet_atomic
from manifests.schemas import DOCUMENTS, GROUPS, IMAGES

# (what, servers, cap per server, latency s, groups)
SCENARIOS = [
    ("stage", 1, 128, 2.0, 1536),
    ("stage", 2, 128, 4.0, 2048),  # the same groups/s as one server: in flight per server, not CPU
    ("client", 1, 128, 2.0, 1536),
]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")


def _serve(port: int, latency: float, cap: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state: dict = {"first": None, "last": None, "done": 0, "in_flight": 0, "max_in_flight": 0}

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "bench", "object": "model"}]})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({k: v for k, v in state.items() if k != "gate"})

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        state["first"] = state["first"] or time.time()
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        n = sum(1 for p in body["messages"][-1]["content"] if p.get("type") == "image_url")
        gate = state.setdefault("gate", asyncio.Semaphore(cap))
        async with gate:
            await asyncio.sleep(latency)
        state["in_flight"] -= 1
        state["done"] += 1
        state["last"] = time.time()
        captions = [f"the bench subject, photo {i + 1} of {n}" for i in range(n)]
        reply = {"subject": "the bench subject", "captions": captions, "group_caption": f"{n} photos"}
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
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/stats", stats),
        ]
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


def build_run(run: Path, count: int) -> Path:
    """A run folder whose extract stage holds ``count`` groups of 2-4 of the photos (one document each)."""
    photos = {hashlib.sha256(b).hexdigest(): b for b in (_photo(p) for p in PHOTOS)}
    ids = list(photos)
    images = [
        {"image_id": i, "bytes": b, "width": 256, "height": 256, "format": "JPEG", "phash": 0, "source": i}
        for i, b in photos.items()
    ]
    groups, documents = [], []
    for k in range(count):
        n = 2 + k % 3
        members = [ids[(k + i) % len(ids)] for i in range(n)]
        doc_id = hashlib.sha256(f"doc{k}".encode()).hexdigest()[:16]
        source = f"https://bench.example/{k}"
        context = [{"alt": f"photo {i}", "text_before": None, "text_after": None} for i in range(n)]
        groups.append(
            {
                "group_id": f"{doc_id}-0-{n}",
                "doc_id": doc_id,
                "source": source,
                "image_ids": members,
                "positions": list(range(n)),
                "context": context,
            }
        )
        documents.append(
            {
                "doc_id": doc_id,
                "source": source,
                "image_refs": members,
                "image_ids": members,
                "positions": list(range(n)),
                "texts": ["A benchmark document."],
            }
        )
    stage = run / "extract"
    write_parquet_atomic(pa.Table.from_pylist(images, schema=IMAGES), stage / "images" / "part-00000.parquet")
    write_parquet_atomic(
        pa.Table.from_pylist(documents, schema=DOCUMENTS), stage / "documents" / "part-00000.parquet"
    )
    write_parquet_atomic(pa.Table.from_pylist(groups, schema=GROUPS), stage / "groups" / "part-00000.parquet")
    commit_external(stage, version="bench")
    return run


def _run_stage(urls: list[str], groups: int) -> float:
    from captioning.config import CaptionConfig
    from captioning.stage import CaptionStage
    from manifests.config import RuntimeConfig
    from pipeline.runner import run_stage

    with tempfile.TemporaryDirectory() as tmp:
        run = build_run(Path(tmp), groups)
        cfg = CaptionConfig(backend="openai", base_urls=urls, model="bench")  # defaults otherwise
        started = time.perf_counter()
        result = run_stage(CaptionStage(), cfg, run, RuntimeConfig(progress=False), quiet=True)
        seconds = time.perf_counter() - started
        if result.manifest.dropped:
            raise RuntimeError(f"groups dropped: {result.manifest.dropped}")
    return seconds


def measure(what: str, servers: int, cap: int, latency: float, groups: int) -> dict[str, float]:
    ports = [_free_port() for _ in range(servers)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_serve, args=(p, latency, cap), daemon=True) for p in ports]
    for proc in procs:
        proc.start()
    urls = [f"http://127.0.0.1:{p}/v1" for p in ports]
    try:
        for url in urls:
            _wait_ready(url)
        if what == "stage":
            wall = _run_stage(urls, groups)
        else:
            backend = OpenAICaptioner(OpenAIBackendConfig(base_urls=urls, model="bench"))
            requests = _requests(groups)
            started = time.perf_counter()
            outcomes = caption_all(backend, requests)
            wall = time.perf_counter() - started
            if any(not o.ok for o in outcomes):
                raise RuntimeError(next(o.error for o in outcomes if not o.ok))
        stats = [httpx.get(url.removesuffix("/v1") + "/stats").json() for url in urls]
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(timeout=10)
    busy = max(s["last"] for s in stats) - min(s["first"] for s in stats)
    capacity = servers * cap / latency
    return {
        "capacity": capacity,
        "busy_rate": groups / busy,
        "ratio": groups / busy / capacity,
        "wall_ratio": groups / wall / capacity,
        "wall": wall,
        "max_in_flight": max(s["max_in_flight"] for s in stats),
    }


def main(argv: list[str] | None = None) -> None:
    import ray

    rows = [
        "| what | servers | cap / server | latency | groups | capacity (groups/s) | reached while busy | "
        "ratio | ratio over wall time | max in flight / server |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for what, servers, cap, latency, groups in SCENARIOS:
        r = measure(what, servers, cap, latency, groups)
        rows.append(
            f"| {what} | {servers} | {cap} | {latency:.1f} s | {groups} | {r['capacity']:.1f} | "
            f"{r['busy_rate']:.1f} | **{r['ratio']:.2f}** | {r['wall_ratio']:.2f} | {r['max_in_flight']} |"
        )
        print(rows[-1], flush=True)
    actors = int(ray.cluster_resources().get("CPU", 1) // 0.5) if ray.is_initialized() else "?"
    body = (
        "`python -m benchmarks.caption`: the openai caption backend with its default settings (128 "
        "requests in flight per server and actor, least_busy, images resized to 768 px) against local "
        "servers with a fixed latency and a concurrency cap of 128; groups of 2-4 real photos (256 px "
        "JPEG). *stage*: `gdt caption` on Ray (local cluster started by the stage; actors: "
        f"{actors}, each running 4 parts of 64 groups at once over one event loop); *client*: "
        "`caption_all` in one process. Capacity = servers x cap / latency; *reached while busy*: groups "
        "over the time from the first request in to the last reply out; *over wall time*: including Ray "
        "start-up, planning and the manifest. Goal: ratio >= 0.9.\n\n" + "\n".join(rows)
    )
    write_result("caption", "Captioning throughput vs server capacity (the stage on Ray actors)", body)


if __name__ == "__main__":
    main()
