"""`make demo` end to end on the sample corpus, then its report in Chromium with every section filled."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.pipeline.report.page import SECTIONS
from tests.pipeline.report.test_report_browser import _open_and_check

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.integration
@pytest.mark.slow
def test_make_demo_runs_every_stage_and_the_report_is_complete(chromium, tmp_path):
    run, corpus = tmp_path / "run", tmp_path / "corpus"
    done = subprocess.run(
        ["make", "demo", f"RUN={run}", f"CORPUS={corpus}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    roc_auc = float(re.search(r"held-out ROC-AUC ([0-9.]+)", out).group(1))
    assert roc_auc >= 0.9
    for kind in ("near-duplicate images", "duplicate groups"):
        precision, recall = map(
            float, re.search(rf"{kind} precision ([0-9.]+) recall ([0-9.]+)", out).groups()
        )
        assert precision >= 0.95 and recall >= 0.9, kind
    assert "backend    context" in out and "shard verify:" in out and ": ok" in out
    assert (run / "samples" / "grid.png").stat().st_size > 0
    assert "report written to" in out

    texts = _open_and_check(chromium, run / "report" / "index.html", tmp_path / "demo-report.png")
    assert set(texts) == set(SECTIONS)
    for section, text in texts.items():
        assert "not run" not in text, f"section {section} says a stage did not run"
