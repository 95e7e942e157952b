"""The label-efficiency curve of the classifier section: held-out ROC-AUC after N labels, per order.

Input: ``RUN/classify/label_efficiency.json`` as ``benchmarks/label_efficiency.py --into RUN`` writes it
({set: {order: {budget: {"median": auc, "seeds": [...]}}}}). Output: per set, rows (``"N labels"``, one
median per order) for a grouped bar chart. A missing or unreadable file gives no curve, never an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from manifests.storage import AnyPath, as_path

FILE = "label_efficiency.json"


@dataclass
class LabelCurve:
    name: str  # the labelled set
    orders: list[str] = field(default_factory=list)
    rows: list[tuple[str, list[float | None]]] = field(default_factory=list)


def label_curves(run: AnyPath) -> list[LabelCurve]:
    try:
        data = json.loads((as_path(run) / "classify" / FILE).read_text())
    except (OSError, ValueError):
        return []
    curves = []
    for name, orders in data.items() if isinstance(data, dict) else []:
        if not isinstance(orders, dict):
            continue
        curve = LabelCurve(str(name), [str(o) for o in orders])
        budgets = sorted({int(b) for per in orders.values() if isinstance(per, dict) for b in per})
        for budget in budgets:
            values = []
            for per in orders.values():
                cell = per.get(str(budget)) if isinstance(per, dict) else None
                median = cell.get("median") if isinstance(cell, dict) else None
                values.append(float(median) if isinstance(median, int | float) else None)
            curve.rows.append((f"{budget} labels", values))
        curves.append(curve)
    return curves
