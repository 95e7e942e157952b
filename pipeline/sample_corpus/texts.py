"""Deterministic text for the sample documents: page titles, long paragraphs and short captions.

Inputs: a `random.Random` chosen by the caller. Outputs: plain single-line strings (no leading or
trailing spaces, no newlines) so that every document format carries them unchanged. A few sentences
hold characters that writers must escape (&, <, quotes) and non-ASCII letters.
"""

from __future__ import annotations

import random

LONG_MIN = 1100  # well above extract's 1000-character gap that separates two groups
CAPTION_MAX = 180  # far below it, even with two captions between neighbouring images

_SENTENCES = (
    "This page is part of a small demonstration corpus built from images that ship with open-source "
    "Python packages.",
    "The photographs come from the scikit-image and scikit-learn sample data and from matplotlib.",
    "We publish notes like this one every week, covering typography, photography and image processing.",
    "Readers often ask how the pictures below were made; the short answer is a few lines of Python.",
    "Comments are closed for this article, but you can reach the editors through the contact form.",
    "Nothing on this page is sponsored, and the images are free to reuse under their original licences.",
    "If the pictures do not load, try reloading the page or switching off an aggressive content blocker.",
    "The café on the corner of our street served as the informal office while this piece was written.",
    "A naïve reading of the figures suggests more than they show, so take the captions with care.",
    "Questions & answers from last month's workshop are collected at the end of this post.",
    'Several readers called the earlier version "too technical"; this one tries to explain more.',
    "When a value is < 150 pixels on its short side, most crawlers treat the picture as an icon.",
    "Subscribe to the newsletter to receive the next issue as soon as it is published.",
    "The archive holds every previous issue, sorted by date and by topic, with a full-text search.",
    "Image processing is the art of turning arrays of numbers into something a person can read.",
    "Good typography is invisible: the reader notices the words, not the letters that carry them.",
    "A type family usually ships a regular, a bold, an italic and a bold italic face.",
    "Monospaced faces give every glyph the same advance width, which keeps columns of code aligned.",
    "Serif faces carry small strokes at the ends of their stems; sans-serif faces do without them.",
    "Photographers have argued about colour grading since the first colour film was sold.",
    "A stereo pair shows the same scene from two slightly different positions, like our two eyes.",
    "Disparity maps encode how far each pixel moved between the left and the right view.",
    "Deep-field images of the sky show thousands of galaxies in a patch smaller than a grain of sand.",
    "Microscopy slides are stained so that different tissues take on different colours.",
    "Texture images such as brick, grass and gravel are used to test segmentation algorithms.",
    "The site footer lists the licences, the privacy policy and the address of the publisher.",
    "Our editors check every article twice before it goes live, and we correct mistakes openly.",
    "The sample images are small on purpose, so that the whole corpus builds in a few seconds.",
    "Share this page with a friend who likes pictures, fonts or programming.",
    "Related posts are listed in the sidebar, with the most recent ones first.",
    "All measurements in this article were taken on an ordinary laptop without a graphics card.",
    "Every figure can be regenerated from the scripts linked in the appendix.",
    "An edit that changes only the colours keeps the shapes of a picture, and thus its structure.",
    "A crop keeps part of the original frame and discards the rest; a zoom makes that part larger.",
    "The weather was poor for most of the week, which left plenty of time for indoor projects.",
    "Cookies on this site only remember your language and whether you dismissed this banner.",
)

_TOPICS = (
    "Notes on",
    "A closer look at",
    "Field notes:",
    "Weekly digest:",
    "Workshop recap:",
    "From the archive:",
    "Quick tip:",
    "Reader question:",
)


def title(rng: random.Random, subject: str) -> str:
    return f"{rng.choice(_TOPICS)} {subject}"


def paragraph(rng: random.Random, min_chars: int = LONG_MIN) -> str:
    """Sentences drawn without repeats until the paragraph is at least min_chars long."""
    pool = list(_SENTENCES)
    rng.shuffle(pool)
    out: list[str] = []
    while sum(len(s) + 1 for s in out) < min_chars:
        out.append(pool[len(out) % len(pool)])
    return " ".join(out)


def short(rng: random.Random) -> str:
    """One or two sentences, well under the group gap."""
    text = rng.choice(_SENTENCES)
    return text if len(text) <= CAPTION_MAX else text[: CAPTION_MAX - 1].rsplit(" ", 1)[0] + "."


def caption(rng: random.Random, what: str) -> str:
    """A figure caption for one image; `what` describes it in a few words."""
    lead = rng.choice(("Figure:", "Above:", "Below:", "Pictured:", "Image:", "Left:", "Next:", "See:"))
    tail = rng.choice(("", " Click to enlarge.", " (Full size in the gallery.)", " Photo: sample data.", ""))
    text = f"{lead} {what}.{tail}"
    return text[:CAPTION_MAX]
