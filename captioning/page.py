"""The side-by-side page of a ``caption eval``: scores, judge pairs, each group's images and captions,
and vote buttons. Inputs: the eval's table and outcomes. Output: HTML text (every model or web text is
escaped). Votes stay in the page until "Save votes" downloads ``votes.json``; saved beside the page, the
next eval of the same templates counts them in ``scores.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2

from captioning.backends.base import CaptionOutcome
from captioning.scoring import TemplateScore, shared_terms

THUMB_SIDE = 160


def render_page(
    table: dict[str, Any],
    scores: Sequence[TemplateScore],
    groups: Sequence[dict[str, Any]],
    group_images: Sequence[Sequence[bytes]],
    results: dict[str, list[CaptionOutcome]],
    to_data_uri: Callable[[bytes, int], str],
) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,  # captions and context are model or web text: always escaped
        undefined=jinja2.StrictUndefined,
    )
    page = {
        "title": ", ".join(results),
        "run": table["run"],
        "backend": table["backend"],
        "model": table["model"],
        "kind": table["kind"],
        "sample_size": len(groups),
        "scores": scores,
        "pairs": table["pairs"],
        "templates": list(results),
        "groups": [
            {
                "group_id": g["group_id"],
                "source": g["source"],
                "thumbnails": [to_data_uri(b, THUMB_SIDE) for b in imgs if b],
                "rows": [
                    {
                        "template": tid,
                        "error": o[k].error,
                        "captions": o[k].captions,
                        "group_caption": o[k].group_caption,
                        "identity": o[k].fields,
                        "shared": sorted(shared_terms(o[k].captions)),
                    }
                    for tid, o in results.items()
                ],
            }
            for k, (g, imgs) in enumerate(zip(groups, group_images, strict=True))
        ],
    }
    return env.get_template("eval_page.html").render(**page)
