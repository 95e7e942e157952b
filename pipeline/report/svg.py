"""Inline SVG bar charts for the report (no JavaScript, no external files).

``bar_chart`` draws labelled horizontal bars, one or more series per row; a row whose value is None is
drawn as a "not run" note. Every label is escaped; the result is markup ready for the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

COLOURS = ("#3b6ea8", "#e07b39", "#5a9e5a", "#a8553b")
ROW_H, BAR_H, LABEL_W, BAR_W, NUM_W = 26, 9, 210, 380, 90


def bar_chart(
    rows: Sequence[tuple[str, Sequence[int | float | None]]],
    series: Sequence[str] = ("",),
    title: str = "",
    chart_id: str = "",
) -> Markup:
    """Horizontal bars: ``rows`` are (label, one value per series); bars share one scale."""
    values = [v for _, vals in rows for v in vals if v is not None]
    top = max(values, default=0) or 1
    legend_h = 20 if len(series) > 1 else 0
    height = legend_h + ROW_H * max(1, len(rows)) + 6
    width = LABEL_W + BAR_W + NUM_W
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    if len(series) > 1:
        x = LABEL_W
        for k, name in enumerate(series):
            colour = COLOURS[k % len(COLOURS)]
            out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>')
            out.append(f'<text x="{x + 14}" y="13" class="legend">{escape(name)}</text>')
            x += 24 + 8 * len(name)
    bar_h = max(4, (ROW_H - 6) // max(1, len(series))) if len(series) > 1 else BAR_H * 2
    for r, (label, vals) in enumerate(rows):
        y0 = legend_h + r * ROW_H + 3
        out.append(
            f'<text x="{LABEL_W - 8}" y="{y0 + ROW_H / 2 + 1:.0f}" text-anchor="end" class="label">'
            f"{escape(label)}</text>"
        )
        for k, value in enumerate(vals):
            y = y0 + k * bar_h if len(series) > 1 else y0 + (ROW_H - 6 - bar_h) / 2
            if value is None:
                out.append(f'<text x="{LABEL_W + 4}" y="{y + bar_h - 2:.0f}" class="note">not run</text>')
                continue
            w = BAR_W * value / top
            colour = COLOURS[k % len(COLOURS)]
            out.append(
                f'<rect x="{LABEL_W}" y="{y:.0f}" width="{max(w, 1 if value else 0):.1f}" '
                f'height="{bar_h - 1}" fill="{colour}"/>'
            )
            out.append(
                f'<text x="{LABEL_W + w + 4:.1f}" y="{y + bar_h - 2:.0f}" class="num">{_fmt(value)}</text>'
            )
    out.append("</svg>")
    return Markup("\n".join(out))


def _fmt(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3g}"
