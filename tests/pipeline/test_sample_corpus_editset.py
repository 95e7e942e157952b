"""The labelled copy/edit set: deterministic, every recipe on every photo, edits that change the picture."""

import numpy as np

from pipeline.sample_corpus import editset, images


def test_the_same_seed_gives_the_same_bytes() -> None:
    first = list(editset.pairs(("coins",), seed=3))
    again = list(editset.pairs(("coins",), seed=3))
    assert [p.variant for p in first] == [p.variant for p in again]
    other = list(editset.pairs(("coins",), seed=4))
    assert [p.variant for p in first] != [p.variant for p in other]  # crops and noise follow the seed


def test_every_recipe_is_applied_and_labelled() -> None:
    pairs = list(editset.pairs(("chelsea", "camera")))
    names = {(p.photo, p.name): p.kind for p in pairs}
    for photo in ("chelsea", "camera"):
        assert all(names[(photo, c)] == "copy" for c in editset.COPIES)
        assert all(names[(photo, e)] == "edit" for e in editset.edit_names(photo))
    assert ("camera", "hue-20") not in names  # a hue shift changes nothing on a grayscale photo
    assert {p.family for p in pairs} >= {"noise", "swirl", "oil-mode", "jpeg", "crop"}


def test_edits_change_the_picture_and_copies_keep_it() -> None:
    original = np.asarray(editset.original("astronaut").convert("RGB"), dtype=np.float32)

    def edited(name: str) -> np.ndarray:
        out = np.asarray(images.decode(editset.edit_bytes("astronaut", name)).convert("RGB"), np.float32)
        assert out.shape == original.shape
        return out

    for name in ("local-paint-12", "rounded-12"):  # a region or the corners replaced
        assert np.abs(edited(name) - original).max() > 60, name
    assert np.std(edited("noise-8") - original) > 5  # sigma 8 per pixel, less what JPEG smooths
    crop = images.decode(editset.copy_bytes("astronaut", "crop-5"))
    h, w = original.shape[:2]
    assert crop.size == (w - round(w * 0.05), h - round(h * 0.05))


def test_frames_contrast_with_the_picture_edge() -> None:
    """A frame the colour of the silhouette's background would change nothing: it gets the opposite one."""
    original = np.asarray(editset.original("horse").convert("L"), dtype=np.float32)
    framed = np.asarray(images.decode(editset.edit_bytes("horse", "frame-4")).convert("L"), dtype=np.float32)
    assert abs(framed[0].mean() - original[0].mean()) > 150
