"""The annotators' guidelines: a Markdown file shown on first login and one key (``g``) away.

Input: ``cfg.guidelines`` (default: the bundled ``guidelines.md``) and, for examples, the label store
(groups with a reviewer's decision or agreeing labels of two or more annotators). Output: HTML
rendered by markdown-it-py with raw HTML escaped (the file may come from anyone with access to the run
config) and a digest, so that an annotator sees the guidelines again when they change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from markupsafe import Markup

from classifier.annotate.auth import Annotator, require_page
from classifier.annotate.pages import templates
from classifier.annotate.review import final_labels

router = APIRouter()

DEFAULT = Path(__file__).with_name("guidelines.md")
# CommonMark with html=False: tags in the file show as text; markdown-it refuses javascript: links
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


class GuidelinesError(RuntimeError):
    """The configured guidelines file cannot be read."""


@dataclass(frozen=True)
class Guidelines:
    html: str
    digest: str

    @classmethod
    def load(cls, path: Path | None) -> Guidelines:
        try:
            text = (path or DEFAULT).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise GuidelinesError(f"cannot read the guidelines file {path}: {err}") from err
        return cls(_MARKDOWN.render(text), hashlib.sha256(text.encode()).hexdigest()[:16])


def examples(state, n: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``n`` good and ``n`` bad example groups: reviewer decisions first, then groups that two or
    more annotators labelled alike. Single labels are never examples: one person's call is no guideline."""
    out: dict[str, list[dict[str, Any]]] = {"good": [], "bad": []}
    # reviewer decisions first: they win over agreeing labels of the same group
    candidates = [
        (g, f["label"], f"decided by reviewer {f['reviewer']}") for g, f in final_labels(state.store).items()
    ]
    for group_id, votes in state.store.labels_by_group().items():
        values = set(votes.values())
        if len(votes) >= 2 and len(values) == 1:
            candidates.append((group_id, values.pop(), f"{len(votes)} annotators agree"))
    seen: set[str] = set()
    for group_id, label, why in candidates:
        if group_id in seen or len(out[label]) >= n:
            continue
        seen.add(group_id)
        group = state.index.group(group_id)
        if group is not None:
            out[label].append({"group_id": group_id, "image_ids": group["image_ids"][:8], "why": why})
    return out


@router.get("/guidelines", response_class=HTMLResponse)
def guidelines_page(request: Request, annotator: Annotator = Depends(require_page)):
    state = request.app.state.label
    state.store.mark_guidelines_seen(annotator.id, state.guidelines.digest)
    cfg = state.cfg
    return templates.TemplateResponse(
        request,
        "guidelines.html",
        {
            "annotator": annotator,
            "html": Markup(state.guidelines.html),  # markdown-it escaped any HTML in the file
            "examples": examples(state, cfg.examples_per_label),
            "words": {"good": cfg.good_means, "bad": cfg.bad_means},
        },
    )
