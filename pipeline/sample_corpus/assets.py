"""Named image files of the corpus: canonical photos, glyphs, edits, crops, copies, icons and broken files.

Inputs: a `Corpus` (which stores the bytes under unique names) and Pillow images from `images`.
Outputs: `Ref`s the document plans place in documents. Every name encodes how the file was made, so
the same recipe always yields the same name and bytes.
"""

from __future__ import annotations

import random

import imagehash
from PIL import Image

from pipeline.sample_corpus import editset, images
from pipeline.sample_corpus.model import Broken, Corpus, Ref

PHOTO_SHORT = 256
GLYPH_SIDE = 224
# (foreground, background) colour schemes of glyph sheets
GLYPH_STYLES = (("black", "white"), ("#1b2a6b", "#f6f1e3"), ("white", "#202020"), ("#7a1010", "#fdf7f0"))
_LINE_ART = {"horse", "page", "text", "clock"}
NEAR_MAX_PHASH = 8  # planted near duplicates stay within this perceptual-hash distance


class Assets:
    """Makes and remembers the image files of one corpus."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self._photos: dict[str, Ref] = {}
        self._photo_images: dict[str, Image.Image] = {}
        # one file format per glyph rendering (face, char, style): a site serves each glyph picture once,
        # so two pages showing one glyph show the same file, never a PNG and a JPEG of it
        self._glyph_formats: dict[tuple[str, str, int], str] = {}

    # -- encoders ----------------------------------------------------------------------------------
    def jpeg(self, name: str, img: Image.Image, alt: str, quality: int = 90) -> Ref:
        return self.corpus.add_file(f"{name}.jpg", images.jpeg(img, quality), "image/jpeg", alt, img.width)

    def png(self, name: str, img: Image.Image, alt: str) -> Ref:
        return self.corpus.add_file(f"{name}.png", images.png(img), "image/png", alt, img.width)

    def encode(self, name: str, img: Image.Image, alt: str, fmt: str) -> Ref:
        return self.png(name, img, alt) if fmt == "png" else self.jpeg(name, img, alt)

    # -- real images -------------------------------------------------------------------------------
    def photo(self, name: str) -> Ref:
        """The canonical web-sized copy of a sample photo, shared by every page that shows it."""
        if name not in self._photos:
            img = self.photo_image(name)
            alt = name.replace("_", " ")
            fmt = "png" if name in _LINE_ART else "jpg"
            self._photos[name] = self.encode(f"photo-{name}", img, alt, fmt)
        return self._photos[name]

    def photo_image(self, name: str) -> Image.Image:
        if name not in self._photo_images:
            self._photo_images[name] = images.fit(images.photo(name), PHOTO_SHORT)
        return self._photo_images[name]

    def logo(self) -> Ref:
        return self.png("site-logo", images.logo(), "Sample GDT logo")

    def glyph(self, face: str, char: str, style: int, fmt: str = "png") -> Ref:
        """The glyph's file; `fmt` applies to its first use only (later uses get the same file)."""
        fmt = self._glyph_formats.setdefault((face, char, style), fmt)
        fg, bg = GLYPH_STYLES[style]
        img = images.glyph(face, char, GLYPH_SIDE, fg, bg)
        alt = f"{char} in {images.face_label(face)}"
        return self.encode(f"glyph-{face}-u{ord(char):04x}-s{style}", img, alt, fmt)

    def edited(self, photo: str, edit: str) -> Ref:
        img = images.edit(self.photo_image(photo), edit)
        return self.jpeg(f"edit-{photo}-{edit}", img, f"{photo.replace('_', ' ')} {images.EDITS[edit][0]}")

    def filtered(self, photo: str, recipe: str) -> Ref:
        """The photo after one filter of the labelled copy/edit set (a manual's "after" picture)."""
        rng = editset.rng_for(self.corpus.seed, photo, recipe)
        img = editset.EDITS[recipe](self.photo_image(photo), rng)
        return self.jpeg(
            f"filter-{photo}-{recipe}", img, f"{photo.replace('_', ' ')} after the {recipe} filter"
        )

    def crop(self, photo: str, box: tuple[float, float, float, float], short: int, tag: str) -> Ref:
        img = images.crop_box(images.photo(photo), box, short)
        return self.jpeg(f"crop-{photo}-{tag}", img, f"detail of {photo.replace('_', ' ')}")

    def view(self, photo: str, tilt: float, side: str) -> Ref:
        img = images.perspective(self.photo_image(photo), tilt, side)
        name = f"view-{photo}-{side}-{round(tilt * 100)}"
        return self.jpeg(name, img, f"{photo.replace('_', ' ')} seen from the {side}")

    def inline_glyph(self, face: str, char: str, style: int) -> Ref:
        """A glyph written into the documents as a data: URI rather than a file (the same PNG bytes as its
        file, so extract stores the two as one image)."""
        if self._glyph_formats.setdefault((face, char, style), "png") != "png":
            raise ValueError(f"{face} {char!r} style {style} is already served as a JPEG file")
        fg, bg = GLYPH_STYLES[style]
        img = images.glyph(face, char, GLYPH_SIDE, fg, bg)
        name = f"inline-{face}-u{ord(char):04x}-s{style}.png"
        return Ref(name, images.png(img), "image/png", f"{char} in {images.face_label(face)}", inline=True)

    def image(self, name: str, img: Image.Image, alt: str, fmt: str = "jpg") -> Ref:
        return self.encode(name, img, alt, fmt)

    # -- near-duplicate copies ---------------------------------------------------------------------
    def near_copy(self, original: Ref, rng: random.Random) -> Ref:
        """A resized, recompressed or slightly cropped copy, recorded as a near duplicate.

        Smooth pictures (a colour wheel) can move their perceptual hash under a 4% crop; such a copy is
        replaced by a recompressed one, so every planted pair is findable by phash.
        """
        assert original.data is not None
        img = images.decode(original.data)
        stem = original.name.rsplit(".", 1)[0]
        how = rng.choice(("resized", "recompressed", "cropped"))
        quality = rng.choice((35, 50, 65))
        if how == "resized":
            # never below 160 px: the copy must stay above extract's min_side to be kept
            scale = rng.choice([s for s in (0.65, 0.75, 1.25) if min(img.size) * s >= 160])
            name, copy, q = f"{stem}-resized{round(scale * 100)}", images.resized(img, scale), 88
        elif how == "cropped":
            frac, shift = rng.choice((0.03, 0.04, 0.05)), rng.choice((0.3, 0.5, 0.7))
            name, copy, q = (
                f"{stem}-crop{round(frac * 100)}s{round(shift * 10)}",
                images.slight_crop(img, frac, shift),
                90,
            )
        if how == "recompressed" or imagehash.phash(copy) - imagehash.phash(img) > NEAR_MAX_PHASH:
            name, copy, q = f"{stem}-q{quality}", img, quality
        ref = self.jpeg(name, copy, original.alt, q)
        self.corpus.near_duplicate(original, ref)
        return ref

    # -- decorations and broken files --------------------------------------------------------------
    def icon(self, kind: str, side: int) -> Ref:
        """A tiny decoration (< 150 px): dropped by extract as too_small."""
        if kind == "bullet":
            img = images.glyph("DejaVuSans-Bold", "\u2022", side)
        elif kind == "arrow":
            img = images.glyph("DejaVuSans", "\u2192", side, "white", "#2a6fdb")
        elif kind == "star":
            img = images.glyph("DejaVuSans", "\u2605", side, "#e0a000", "white")
        elif kind == "mail":
            img = images.glyph("DejaVuSans", "@", side, "white", "#444444")
        else:  # a thumbnail of a photo
            img = images.fit(images.photo(kind), side)
        return self.png(f"icon-{kind}-{side}", img, "")

    def divider(self) -> Ref:
        """A wide ornamental rule: dropped by extract as bad_aspect."""
        img = Image.new("RGB", (640, 180), "white")
        img.paste(Image.new("RGB", (600, 12), "#888888"), (20, 84))
        return self.png("divider-rule", img, "")

    def broken(self, kind: Broken, tag: str) -> Ref:
        if kind == "missing":
            return Ref(f"missing-{tag}.jpg", None, "image/jpeg", f"missing picture {tag}", broken="missing")
        if kind == "truncated":
            data = images.truncated(
                images.jpeg(self.photo_image("coffee" if tag.endswith("0") else "rocket"))
            )
            ref = self.corpus.add_file(f"truncated-{tag}.jpg", data, "image/jpeg", "a photo that was cut off")
        elif kind == "not_image":
            ref = self.corpus.add_file(f"error-page-{tag}.jpg", images.NOT_IMAGE, "image/jpeg", "a photo")
        else:
            ref = self.corpus.add_file(
                f"chart-{tag}.svg", images.svg(f"chart {tag}"), "image/svg+xml", "a chart"
            )
        return Ref(ref.name, ref.data, ref.mime, ref.alt, broken=kind)
