"""Fixtures of the report tests: a complete hand-built run and its report, and the report of the
extracted sample corpus (the ``sample_run`` fixture of tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.report.build import write_report
from pipeline.report.config import ReportConfig
from tests.pipeline.report.inputs import build_report_run


@pytest.fixture(scope="session")
def hand_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("report-hand") / "run"
    ids = build_report_run(run)
    return run, ids


@pytest.fixture(scope="session")
def hand_report(hand_run, tmp_path_factory):
    run, ids = hand_run
    out = tmp_path_factory.mktemp("report-out") / "report"
    return write_report(run, out, ReportConfig(), Path(ids["truth"]))


@pytest.fixture(scope="session")
def sample_report(sample_run, sample_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sample-report") / "report"
    return write_report(sample_run, out, ReportConfig(), sample_corpus / "truth.json")
