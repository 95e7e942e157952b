"""The glyphs each typeface of the sample corpus shows: characters it draws unlike every other face.

Inputs: the faces and candidate characters of `images`. Output: `FACE_GLYPHS` (face -> its characters)
and `face_glyphs(face)`, which the font pages draw from.

Families share drawings: DejaVu Sans Mono takes most letters from DejaVu Sans, cmmi10's letters are
cmti10's, several STIX weights share one '%'; and thin glyphs ('i', 'l', '1') of one face differ in a few
pixels only. A page showing such a glyph would hold a picture that is, to within a pixel, a picture on
another page, while truth.json calls the two unrelated. So a glyph is shown only when it is drawn
visibly unlike every glyph shown before it: rendered black on white, the two differ in at least
`ALIKE_SHARE` of the pixels at 128 px after alignment (dedup's pixel comparison; when the table was
chosen, twice the share its check tolerated in a copy, so that a resized or recompressed copy of one
glyph is still not the other; the test checks twice today's tolerance and dedup's whole decision), or
their perceptual hashes lie beyond `MAX_PHASH`. Candidate characters are handed out in turn, the face
holding the fewest glyphs first, so every face keeps a set of its own.

`choose()` computes the table by rendering every face x character and comparing the renderings (about a
minute); its result is written below so that builds stay fast and byte-identical (`python -m
pipeline.sample_corpus.glyphs` prints it again). A test checks, pair by pair, that the table still holds
with the fonts and Pillow installed.
"""

from __future__ import annotations

import pprint
from collections.abc import Iterable

import imagehash

from pipeline.sample_corpus import images

ALIKE_SHARE = 0.01  # renderings differing in fewer pixels than this count as one drawing
MAX_PHASH = 20  # dedup never calls images this far apart copies (its max_phash)
MIN_GLYPHS = 12  # a face's two font pages show disjoint glyphs, up to six each

# written by choose() (see the module docstring)
FACE_GLYPHS: dict[str, str] = {
    "DejaVuSans": "Ag&QkeMx%W2mwGK9",
    "DejaVuSans-Bold": "Ag7&Q3k?HMxW2mrwGKS4",
    "DejaVuSans-Oblique": "A7b3HMx%WydmwGK4",
    "DejaVuSans-BoldOblique": "Ag7&Q3?HMx%WdmwGS",
    "DejaVuSansMono": "ARbQ?HM5WydmtwG",
    "DejaVuSansMono-Bold": "AR&bQHaeM5yZdmtGK9",
    "DejaVuSansMono-Oblique": "g&QkaM5%WZmrwGS9",
    "DejaVuSansMono-BoldOblique": "AR&bQkHM5yZ2tGK49",
    "DejaVuSerif": "ARQ3kHaMWyZrGKS",
    "DejaVuSerif-Bold": "AR&Q3?HMx5%WZ2mtwGS49",
    "DejaVuSerif-Italic": "R&Q?HaeMWy2twGK",
    "DejaVuSerif-BoldItalic": "AgR7&Q3kHaeMx5WyZ2twKS4",
    "STIXGeneral": "gR&3?He5%WmtwS49",
    "STIXGeneralBol": "g7&k?Hae5WyZmwGK49",
    "STIXGeneralItalic": "ARbQ3?eMWyZdmtwKS9",
    "STIXGeneralBolIta": "g&bQkHax5W2mrwGK49",
    "cmr10": "AR7&bQ3aM5%2dGK9",
    "cmb10": "AR&bQ3HMx%Z2dGKS49",
    "cmss10": "AR&QHaM%WZrwGKS",
    "cmti10": "AR7&bQ3?x5%2mrtGS49",
    "cmtt10": "AgR&bQk?HaeMx5%WyZmrtwGKS4",
    "cmmi10": "g7Q3kHaM5WZ2mwGK49",
}


def face_glyphs(face: str) -> str:
    """The characters the face's pages may show."""
    return FACE_GLYPHS[face]


def choose(chars: Iterable[str] = images.CANDIDATE_CHARS) -> dict[str, str]:
    """Give each character to the faces whose drawing of it is unlike every glyph already given out."""
    # imported here: only regenerating the table needs the comparison (and dedup's modules)
    from pipeline.dedup.verify import PixelSignature, compare

    chosen = {face: "" for face in images.FACES}
    kept: list[tuple[imagehash.ImageHash, PixelSignature]] = []
    for char in chars:
        drawers = [f for f in images.FACES if images.draws_as_itself(f, char)]
        for face in sorted(drawers, key=lambda f: (len(chosen[f]), images.FACES.index(f))):
            img = images.glyph(face, char)
            phash, sig = imagehash.phash(img), PixelSignature.of(img)
            if all(phash - h > MAX_PHASH or compare(sig, s).changed_share >= ALIKE_SHARE for h, s in kept):
                kept.append((phash, sig))
                chosen[face] += char
    short = {f: len(c) for f, c in chosen.items() if len(c) < MIN_GLYPHS}
    if short:
        raise ValueError(f"faces with fewer than {MIN_GLYPHS} glyphs of their own: {short}")
    return chosen


if __name__ == "__main__":
    pprint.pprint(choose(), sort_dicts=False, width=110)
