"""The label-efficiency curve in the classifier section, from RUN/classify/label_efficiency.json."""

from __future__ import annotations

import json

from pipeline.report.label_curve import label_curves
from pipeline.report.metrics import classifier_view
from pipeline.report.svg import bar_chart

CURVES = {
    "near misses": {
        "random": {"10": {"median": 0.81, "seeds": [0.8, 0.81, 0.82]}, "100": {"median": 0.93, "seeds": []}},
        "queue": {"10": {"median": 0.9, "seeds": [0.9]}},
    }
}


def write(run, data) -> None:
    (run / "classify").mkdir(parents=True)
    (run / "classify" / "label_efficiency.json").write_text(json.dumps(data))


def test_curve_rows_are_budgets_with_one_median_per_order(tmp_path):
    write(tmp_path, CURVES)
    [curve] = label_curves(tmp_path)
    assert curve.name == "near misses" and curve.orders == ["random", "queue"]
    assert curve.rows == [("10 labels", [0.81, 0.9]), ("100 labels", [0.93, None])]
    chart = str(bar_chart(curve.rows, series=curve.orders, title="t"))
    assert "0.93" in chart and "not run" in chart and "queue" in chart


def test_classifier_section_carries_the_curve_and_tolerates_a_broken_file(tmp_path):
    run = tmp_path / "run"
    write(run, CURVES)
    assert [c.name for c in classifier_view(run, tmp_path / "out").label_curves] == ["near misses"]
    (run / "classify" / "label_efficiency.json").write_text("{not json")
    assert classifier_view(run, tmp_path / "out").label_curves == []
    assert label_curves(tmp_path / "nowhere") == []
