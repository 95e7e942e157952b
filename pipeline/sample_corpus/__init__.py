"""The bundled demo corpus: interleaved documents of real offline images, in three formats, with truth.

`build(out, seed)` writes OUT/images/, OUT/documents.parquet (OBELICS), OUT/documents.jsonl.gz (MMC4),
OUT/html/*.html, OUT/truth.json and OUT/README.md. The same seed gives byte-identical files. The
corpus is written to a temporary sibling folder and moved into place when complete; an existing
sample corpus at OUT is replaced, any other non-empty folder is refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from pipeline.errors import UserError

README = """# Sample corpus

A small, deterministic corpus of {n_docs} interleaved documents (web-page-like articles mixing text and
images) written three times with the same content: as OBELICS-style parquet (`documents.parquet`), as
MMC4 JSON lines (`documents.jsonl.gz`) and as HTML pages (`html/`). Its {n_files} image files (`images/`)
are made only from pictures that ship inside Python packages and need no download: the scikit-image
sample data (astronaut, chelsea, coffee, rocket, camera, moon, coins, hubble_deep_field, retina,
immunohistochemistry, colorwheel, horse, page, text, clock, brick, grass, gravel, the stereo motorcycle
pair and its disparity map, and the logo), scikit-learn's china and flower photos, matplotlib's
grace_hopper photo, and glyphs rendered from the DejaVu, STIX and Computer Modern fonts bundled with
matplotlib; edits, crops, views and copies are computed from them. `truth.json` (seed {seed}) lists every
candidate group with a good/bad label and a category, the planted near-duplicate images and duplicate
groups, the broken references, the boilerplate logo, the shared original photos and the before/after
edit pairs (original, edited picture, kind of edit) that dedup must keep apart.
"""


def build(out: Path, seed: int = 0) -> Path:
    """Build the sample corpus into `out` and return it."""
    # Imported here: the image sources pull in scikit-learn and scikit-image, too slow for `gdt --help`.
    from pipeline.sample_corpus import documents, truth, writers

    out = Path(out)
    _check_target(out)
    corpus = documents.plan(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        writers.write_images(corpus, tmp)
        writers.write_obelics(corpus, tmp / "documents.parquet")
        writers.write_mmc4(corpus, tmp / "documents.jsonl.gz")
        writers.write_html(corpus, tmp / "html")
        (tmp / "truth.json").write_text(json.dumps(truth.truth(corpus), indent=1, ensure_ascii=False) + "\n")
        readme = README.format(n_docs=len(corpus.docs), n_files=len(corpus.files), seed=seed)
        (tmp / "README.md").write_text(readme)
        tmp.chmod(0o755)  # mkdtemp makes the folder private; the corpus is meant to be shared
        if out.exists():
            shutil.rmtree(out) if any(out.iterdir()) else out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_target(out: Path) -> None:
    from pipeline.sample_corpus import truth

    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    try:
        previous = json.loads((out / "truth.json").read_text()).get("generator")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != truth.GENERATOR:
        raise UserError(
            f"{out} is not empty and does not hold a sample corpus; choose an empty or new folder"
        )
