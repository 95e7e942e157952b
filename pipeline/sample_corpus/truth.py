"""The truth file of the sample corpus, assembled from what the plans recorded while building documents.

Inputs: a planned `Corpus`. Output: the JSON-ready dict written to OUT/truth.json:
  seed, generator, documents [{url, slug, n_image_refs, image_refs}],
  groups [{doc_url, positions, label, category, kind}]  every candidate group extract forms; kind is
                                                        the caption kind (font, edit, series, identity, other)
  near_duplicate_images [[a, b]]                        distinct files that are near copies
  duplicate_groups [[{doc_url, positions}, {doc_url, positions}]]
  broken_references [{doc_url, position, kind}]
  boilerplate_images, shared_originals                  paths relative to OUT
  edit_pairs [{original, edited, kind}]                 before/after pictures of one group (an edit)
"""

from __future__ import annotations

from typing import Any

from pipeline.sample_corpus.model import Corpus

GENERATOR = "gdt sample-corpus"
# The caption stage's group kind for each planned category: a multi-view scene shows one identity.
KIND_OF_CATEGORY = {
    "font": "font",
    "edit": "edit",
    "series": "series",
    "multiview": "identity",
    "unrelated": "other",
    "mixed": "other",
}


def truth(corpus: Corpus) -> dict[str, Any]:
    assert corpus.logo_ref is not None
    near = _closure(corpus.near_duplicates)
    return {
        "seed": corpus.seed,
        "generator": GENERATOR,
        "documents": [
            {
                "url": d.url,
                "slug": d.slug,
                "n_image_refs": len(d.refs),
                "image_refs": [r.uri() for r in d.refs],
            }
            for d in corpus.docs
        ],
        "groups": [
            {
                "doc_url": d.url,
                "positions": g.positions,
                "label": g.label,
                "category": g.category,
                "kind": KIND_OF_CATEGORY[g.category],
            }
            for d in corpus.docs
            for g in d.groups
        ],
        "near_duplicate_images": [list(p) for p in near],
        "duplicate_groups": [
            [{"doc_url": a_url, "positions": a_pos}, {"doc_url": b_url, "positions": b_pos}]
            for (a_url, a_pos), (b_url, b_pos) in corpus.duplicate_groups
        ],
        "broken_references": [
            {"doc_url": url, "position": position, "kind": kind} for url, position, kind in corpus.broken
        ],
        "boilerplate_images": [corpus.logo_ref.path],
        "shared_originals": list(corpus.shared_originals),
        "edit_pairs": [{"original": a, "edited": b, "kind": kind} for a, b, kind in corpus.edit_pairs],
    }


def _closure(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every pair within each cluster: two copies of one original are near duplicates of each other too."""
    cluster: dict[str, set[str]] = {}
    for a, b in pairs:
        merged = cluster.get(a, {a}) | cluster.get(b, {b})
        for name in merged:
            cluster[name] = merged
    return sorted({(a, b) for members in cluster.values() for a in members for b in members if a < b})
