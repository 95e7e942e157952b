"""Boilerplate both ways: a logo on every page goes; a photo reused as the original of many edits stays."""

import numpy as np
import skimage.data
from PIL import Image

from pipeline.dedup.boilerplate import PixelStats, find_boilerplate
from pipeline.dedup.config import DedupConfig


def _logo() -> Image.Image:
    rgba = Image.fromarray(skimage.data.logo())
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat.resize((180, 180))


def _photo() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea()).resize((400, 300))


def _site(n_docs: int) -> list[list[str]]:
    """Each page: the logo first, then the shared original photo and one edit of it."""
    return [["logo", "original", f"edit{k}"] for k in range(n_docs)]


def _find(docs: list[list[str]], cfg: DedupConfig) -> dict:
    sizes = {"logo": (180, 180), "original": (400, 300), **{f"edit{k}": (400, 300) for k in range(len(docs))}}
    stats = {"logo": PixelStats.of(_logo()), "original": PixelStats.of(_photo())}
    return find_boilerplate(docs, {}, sizes, stats, cfg)


def test_logo_on_every_page_goes_and_the_reused_photo_stays() -> None:
    found = _find(_site(20), DedupConfig())
    assert set(found) == {"logo"}
    assert set(found["logo"].traits) == {"icon_like", "flat", "fixed_position"}
    assert found["logo"].documents == 20


def test_frequency_alone_is_not_enough_and_rarity_protects_even_a_logo() -> None:
    cfg = DedupConfig(boilerplate_min_documents=5)
    assert _find(_site(4), cfg) == {}  # a logo on four pages is below the frequency floor
    strict = DedupConfig(boilerplate_min_traits=3)
    moved = [
        ["original", f"edit{k}", "logo"] if k % 2 else ["logo", "original", f"edit{k}"] for k in range(20)
    ]
    # the logo at varying places still has two traits (icon-like, flat): it goes at the default...
    assert set(_find(moved, DedupConfig())) == {"logo"}
    # ...but not when three traits are required
    assert _find(moved, strict) == {}


def test_near_duplicate_copies_of_a_logo_count_as_one_cluster() -> None:
    docs = [[f"logo-copy{k % 3}", f"photo{k}"] for k in range(9)]
    cluster_of = {f"logo-copy{k}": "logo-copy0" for k in range(3)}
    sizes = {"logo-copy0": (180, 180)}
    stats = {"logo-copy0": PixelStats.of(_logo())}
    found = find_boilerplate(docs, cluster_of, sizes, stats, DedupConfig())
    assert set(found) == {"logo-copy0"} and found["logo-copy0"].documents == 9


def test_flat_trait_separates_graphics_from_photos() -> None:
    cfg = DedupConfig()
    assert PixelStats.of(_logo()).entropy < cfg.flat_max_entropy
    assert PixelStats.of(_photo()).entropy >= cfg.flat_max_entropy
    assert PixelStats.of(Image.fromarray(np.full((64, 64, 3), 200, np.uint8))).entropy == 0.0
