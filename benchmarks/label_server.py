"""Latency of the labelling web form at 10,000 and 1,000,000 candidate groups.

Writes a synthetic run (groups table with the manifests schema, a small pool of real PNG images),
starts ``gdt label serve`` in its own process, and times, over real HTTP on loopback, a labelling
session: ``GET /api/next`` (then a label is posted, so the queue moves) and the label page ``GET /``.
Then, in headless Chromium (``--presses``, 0 to skip), the annotator's view of it: from the key press
to the next group fully shown (its id on the page and every image decoded, measured in the page at
animation frames), with a dwell between presses as a quick annotator would take.
With ``--retrain-every K`` the run is also embedded (offline encoder, the 64 pool images) and each size
is measured twice, ``label.retrain_every=0`` and ``=K``: with retraining on, the annotator first labels
what it is served, one group every half second, until a served group carries a model score (the time
from the server's first answer to then is "first model order"), and the timing starts then, so the
timed requests run while the background retrainer refits every K labels (and, at 1M groups, still
featurises the rest of its pool); the fits done meanwhile are counted from ``/api/stats``.
Prints a markdown snippet for BENCHMARKS.md. Goals: HTTP p95 under 50 ms, key press -> next group
shown p95 under 100 ms, neither growing with the run size.

    .venv/bin/python benchmarks/label_server.py [--sizes 10000 1000000] [--requests 300] [--presses 200]
        [--keep DIR] [--retrain-every 5 (0: off only)] [--pace 100 (ms after each label)]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from benchmarks.common import write_result

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from manifests.schemas import GROUPS, IMAGES  # noqa: E402

PART_ROWS = 100_000
CHROMIUM = "/usr/bin/chromium"
DWELL_MS = 400  # time on a group before the next key press (prefetch happens meanwhile)
LABEL_PAUSE = 0.5  # seconds between labels while waiting for the first model order
# one key press in the page: resolves with the milliseconds until the next group is fully shown
PRESS = """async () => {
  const group = document.getElementById('group');
  const before = group.dataset.groupId;
  const t0 = performance.now();
  document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'a', bubbles: true}));
  for (;;) {
    await new Promise(requestAnimationFrame);
    const images = [...document.querySelectorAll('#images img')];
    if (group.dataset.groupId !== before && images.length
        && images.every(i => i.complete && i.naturalWidth > 0)) return performance.now() - t0;
    if (performance.now() - t0 > 10000) throw new Error('no next group within 10 s');
  }
}"""
WORDS = "group image page figure glyph edit before after the of a photo view style scene".split()


def _png(i: int) -> bytes:
    image = Image.new("RGB", (64, 64), ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_synthetic_run(run: Path, n_groups: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pool = [_png(i) for i in range(64)]
    ids = [hashlib.sha256(d).hexdigest() for d in pool]
    images = pa.Table.from_pylist(
        [
            {
                "image_id": i,
                "bytes": d,
                "width": 64,
                "height": 64,
                "format": "PNG",
                "phash": 0,
                "source": f"{n}.png",
            }
            for n, (i, d) in enumerate(zip(ids, pool, strict=True))
        ],
        schema=IMAGES,
    )
    (run / "extract" / "images").mkdir(parents=True)
    pq.write_table(images, run / "extract" / "images" / "part-00000.parquet")
    (run / "extract" / "groups").mkdir(parents=True)
    sentence = " ".join(WORDS * 4)  # ~250 characters of nearby text per field
    for part, start in enumerate(range(0, n_groups, PART_ROWS)):
        stop = min(start + PART_ROWS, n_groups)
        sizes = rng.integers(2, 9, stop - start)
        rows = []
        for g, n in zip(range(start, stop), sizes.tolist(), strict=True):
            doc_id = f"{g:016x}"
            rows.append(
                {
                    "group_id": f"{doc_id}-0-{n}",
                    "doc_id": doc_id,
                    "source": f"https://site{g % 500}.example/doc{g // 3}.html",
                    "image_ids": [ids[(g + j) % 64] for j in range(n)],
                    "positions": list(range(n)),
                    "context": [
                        {"alt": f"figure {j}", "text_before": sentence, "text_after": sentence}
                        for j in range(n)
                    ],
                }
            )
        pq.write_table(
            pa.Table.from_pylist(rows, schema=GROUPS),
            run / "extract" / "groups" / f"part-{part:05d}.parquet",
            row_group_size=10_000,
        )


def _label(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "classifier.annotate", *args],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_latency(url: str, token: str, presses: int) -> list[float]:
    """Milliseconds from each key press to the next group fully shown, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{url}/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.goto(f"{url}/")
        times = []
        for _ in range(presses):
            page.wait_for_timeout(DWELL_MS)
            times.append(page.evaluate(PRESS))
        browser.close()
    return times


def embed_run(run: Path) -> None:
    """Vectors for the run's images (the offline encoder on the 64 pool images): retraining needs them."""
    from classifier.embed import EmbedConfig, EmbedStage
    from classifier.encoders import EncoderConfig
    from manifests.config import RuntimeConfig
    from manifests.ledger import StageManifest, describe_outputs, read_manifest, write_manifest
    from pipeline.runner import run_stage

    folder = run / "extract"
    if read_manifest(folder) is None:  # the synthetic tables, recorded as a finished extract stage
        (folder / "drops").mkdir(exist_ok=True)
        outputs = describe_outputs(folder)
        write_manifest(
            folder,
            StageManifest(
                stage="extract", version="synthetic", config={}, config_hash="", inputs=[], outputs=outputs
            ),
        )
    encoder = EncoderConfig(kind="efficientnet_lite0", threads=1)
    run_stage(EmbedStage(), EmbedConfig(encoder=encoder), run, RuntimeConfig(executor="local"), quiet=True)


def _wait_for_model(client: httpx.Client, seconds: float = 900) -> float:
    """Label what /api/next serves, a group every LABEL_PAUSE s, until it serves one with a model score;
    returns the seconds that took. (Served groups outside the retrainer's pool never get a score: the
    annotator labels them and goes on, as a person would.)"""
    started = time.monotonic()
    for i in itertools.count():
        group = client.get("/api/next").json()["group"]
        if group["model_score"] is not None:
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"the retrainer gave no model score: {client.get('/api/stats').json()}")
        client.post("/api/labels", json={"group_id": group["group_id"], "label": ("good", "bad")[i % 2]})
        time.sleep(LABEL_PAUSE)
    raise AssertionError("unreachable")


def _fits(client: httpx.Client) -> int:
    retrainer = client.get("/api/stats").json()["retrainer"]
    return retrainer["retrains"] if retrainer else 0


def measure(
    run: Path, n_requests: int, presses: int, retrain_every: int = 0, pace: float = 0.0
) -> dict[str, float]:
    token = _label("add-annotator", "--run", str(run), "bench").splitlines()[-1]
    port = _free_port()
    started = time.perf_counter()
    sets = ["--set", f"label.retrain_every={retrain_every}"]
    server = subprocess.Popen(
        [sys.executable, "-m", "classifier.annotate", "serve", "--run", str(run), "--port", str(port), *sets],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        while True:
            try:
                client.get("/login")
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise RuntimeError("server exited") from None
                time.sleep(0.2)
        first_start = time.perf_counter() - started
        model_s = _wait_for_model(client) if retrain_every else float("nan")
        fits_before = _fits(client)
        browser = httpx.Client(base_url=url, timeout=600)
        browser.post("/login", data={"token": token}, headers={"Origin": url})  # keeps the session cookie
        nexts, pages = [], []
        for i in range(n_requests):
            t = time.perf_counter()
            response = client.get("/api/next")
            nexts.append(time.perf_counter() - t)
            group = response.json()["group"]
            client.post("/api/labels", json={"group_id": group["group_id"], "label": ("good", "bad")[i % 2]})
            time.sleep(pace)
            t = time.perf_counter()
            page = browser.get("/")
            pages.append(time.perf_counter() - t)
            assert page.status_code == 200
        fits = _fits(client) - fits_before
        load = os.getloadavg()[0]  # other jobs on the machine: the figures are only as quiet as this
        shown = browser_latency(url, token, presses) if presses else [float("nan")]
        return {
            "model_s": model_s,
            "fits": fits,
            "load": load,
            "shown_p50": float(np.percentile(shown, 50)),
            "shown_p95": float(np.percentile(shown, 95)),
            "start_s": first_start,
            "next_p50": 1000 * float(np.percentile(nexts, 50)),
            "next_p95": 1000 * float(np.percentile(nexts, 95)),
            "page_p50": 1000 * float(np.percentile(pages, 50)),
            "page_p95": 1000 * float(np.percentile(pages, 95)),
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--presses", type=int, default=200, help="key presses timed in Chromium (0: none)")
    parser.add_argument("--keep", type=Path, help="keep the synthetic runs in this folder")
    parser.add_argument(
        "--retrain-every", type=int, default=5, help="also measure with retraining on (0: only off)"
    )
    parser.add_argument(
        "--pace", type=float, default=100.0, help="ms the annotator waits after each label (0: none)"
    )
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="label-bench-"))
    results = {}
    try:
        for n in args.sizes:
            run = root / f"run-{n}"
            if not (run / "extract" / "groups").exists():
                t = time.perf_counter()
                write_synthetic_run(run, n)
                print(f"wrote {n} synthetic groups in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            if args.retrain_every:
                embed_run(run)
            shutil.rmtree(run / "labels", ignore_errors=True)  # a true first start (index + queue)
            for every in sorted({0, args.retrain_every}):
                for suffix in ("", "-wal", "-shm"):  # later starts keep the index, not labels and queue
                    (run / "labels" / f"labels.sqlite{suffix}").unlink(missing_ok=True)
                results[n, every] = measure(run, args.requests, args.presses, every, args.pace / 1000)
                print(f"{n}, retrain every {every}: {results[n, every]}", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    lines = [
        f"`benchmarks/label_server.py`, {args.requests} requests each, real HTTP on loopback, one annotator",
        f"labelling as it goes (a label is posted between requests, then {args.pace:g} ms of pause); then",
        "headless Chromium at 1366x768,",
        f"{args.presses} key presses `a`, {DWELL_MS} ms on each group: key press -> next group fully shown",
        "(id on the page, every image decoded; measured in the page at animation frames: ~16 ms steps).",
        "Goals: HTTP p95 under 50 ms; key press -> shown p95 under 100 ms. Load: the 1-minute load average",
        "after the timed requests. The first start of each size builds the index and the queue; a second",
        "row of the size (retraining on) reuses the index and builds the queue.",
        "",
        "| groups | retrain every | first start (index + queue) | first model order | fits while timed "
        "| GET /api/next p50 | p95 | page GET / p50 | p95 | key -> shown p50 | p95 | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (n, every), r in results.items():
        model = f"{r['model_s']:.1f} s" if every else "-"
        lines.append(
            f"| {n:,} | {every or 'off'} | {r['start_s']:.1f} s | {model} | {r['fits'] if every else '-'} "
            f"| {r['next_p50']:.1f} ms "
            f"| {r['next_p95']:.1f} ms "
            f"| {r['page_p50']:.1f} ms | {r['page_p95']:.1f} ms "
            f"| {r['shown_p50']:.0f} ms | {r['shown_p95']:.0f} ms | {r['load']:.1f} |"
        )
    return write_result("label_server", "label server: latency at 10k and 1M groups", "\n".join(lines))


if __name__ == "__main__":
    main()
