"""All document plans of the sample corpus, in one deterministic order.

Inputs: a seed. Outputs: a filled `Corpus` (documents, image files, truth) ready for the writers.
The plans live in `plans_good` and `plans_bad`; this module runs them, picks the HTML markup variant
of some images (lazy loading, <picture>, srcset), and shuffles the documents into a stable order.
"""

from __future__ import annotations

from pipeline.sample_corpus import images, plans_bad, plans_good
from pipeline.sample_corpus.assets import Assets
from pipeline.sample_corpus.model import Corpus, Ref
from pipeline.sample_corpus.plans_good import CropSampler

_CROPPED = (*plans_good.SERIES_SOURCES, *images.TEXTURES)
SRCSET_SMALL_WIDTH = 160


def plan(seed: int) -> Corpus:
    corpus = Corpus(seed)
    assets = Assets(corpus)
    corpus.logo_ref = assets.logo()
    samplers = {p: CropSampler(p, corpus.rng(f"crops:{p}")) for p in _CROPPED}

    good = plans_good.fonts(corpus, assets)
    good += plans_good.edits(corpus, assets)
    plans_good.before_after(corpus, assets)  # not re-posted: its pages are pairs of one shared original
    good += plans_good.multiview(corpus, assets)
    # the large zoom boxes first, while the source pictures still have room for them
    good += plans_good.zooms(corpus, assets, samplers)
    good += plans_good.series(corpus, assets, samplers)
    plans_good.two_group_pages(corpus, assets, samplers)
    plans_bad.unrelated(corpus, assets)
    plans_bad.mixed(corpus, assets, samplers)
    plans_bad.icon_pages(corpus, assets)
    plans_bad.reposts(corpus, assets, good)
    plans_bad.broken_pages(corpus, assets, samplers)

    _html_variants(corpus, assets)
    corpus.rng("order").shuffle(corpus.docs)
    return corpus


def _html_variants(corpus: Corpus, assets: Assets) -> None:
    """Mark some image files to be written with the markup real pages use; all resolve to the same file."""
    for doc in corpus.docs:
        rng = corpus.rng(f"html:{doc.slug}")
        for i, block in enumerate(doc.blocks):
            if not isinstance(block, Ref) or block.inline or block.broken or block.data is None:
                continue
            roll = rng.random()
            if roll < 0.08:
                doc.blocks[i] = block.styled("lazy")
            elif roll < 0.13:
                doc.blocks[i] = block.styled("picture")
            elif roll < 0.18 and block.width > SRCSET_SMALL_WIDTH:
                small = images.resized(images.decode(block.data), SRCSET_SMALL_WIDTH / block.width)
                stem = block.name.rsplit(".", 1)[0]
                small_ref = assets.jpeg(f"{stem}-w{SRCSET_SMALL_WIDTH}", small, block.alt)
                doc.blocks[i] = block.styled("srcset", small_ref.name)
