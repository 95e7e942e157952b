"""Write the corpus in the three input formats extract reads, plus its image files.

Inputs: a planned `Corpus` and an output folder. Outputs (all references relative to that folder):
  images/<name>           every image file, broken ones included
  documents.parquet       OBELICS-style: texts, images, metadata (JSON), general_metadata (JSON)
  documents.jsonl.gz      MMC4: url, text_list, image_info, similarity_matrix
  html/<slug>.html        one page per document, images as ../images/<name>
Every writer is byte-deterministic: no timestamps, fixed ordering, fixed compression settings.
"""

from __future__ import annotations

import gzip
import html
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.sample_corpus.model import Corpus, Doc, Ref

# a 1x1 transparent GIF: the placeholder lazy-loading pages put in src until the real image loads
PLACEHOLDER_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

OBELICS_SCHEMA = pa.schema(
    [
        ("texts", pa.list_(pa.string())),
        ("images", pa.list_(pa.string())),
        ("metadata", pa.string()),
        ("general_metadata", pa.string()),
    ]
)


def write_images(corpus: Corpus, out: Path) -> None:
    folder = out / "images"
    folder.mkdir(parents=True)
    for name in sorted(corpus.files):
        (folder / name).write_bytes(corpus.files[name])


def write_obelics(corpus: Corpus, path: Path) -> None:
    rows: dict[str, list] = {name: [] for name in OBELICS_SCHEMA.names}
    for doc in corpus.docs:
        rows["texts"].append([None if isinstance(b, Ref) else b for b in doc.blocks])
        rows["images"].append([b.uri() if isinstance(b, Ref) else None for b in doc.blocks])
        meta = [{"alt_text": b.alt} if isinstance(b, Ref) else None for b in doc.blocks]
        rows["metadata"].append(json.dumps(meta, ensure_ascii=False))
        rows["general_metadata"].append(json.dumps({"url": doc.url, "title": doc.title}, ensure_ascii=False))
    table = pa.table(rows, schema=OBELICS_SCHEMA)
    pq.write_table(table, path, compression="zstd", row_group_size=64)


def _mmc4_record(corpus: Corpus, doc: Doc) -> dict:
    """MMC4 anchors each image on a sentence: here, the text block that follows the image, as
    OpenFlamingo's interleaving places an image before its matched sentence."""
    rng = corpus.rng(f"mmc4:{doc.slug}")
    text_list = [b for b in doc.blocks if isinstance(b, str)]
    infos, matrix = [], []
    n_texts_seen = 0
    for block in doc.blocks:
        if isinstance(block, str):
            n_texts_seen += 1
            continue
        if n_texts_seen >= len(text_list):
            raise ValueError(f"{doc.slug}: an image after the last text block cannot be written as MMC4")
        sims = [round(rng.uniform(0.05, 0.2), 4) for _ in text_list]
        sims[n_texts_seen] = round(rng.uniform(0.22, 0.36), 4)
        infos.append(
            {
                "image_name": block.name,
                "raw_url": block.uri(),
                "matched_text_index": n_texts_seen,
                "matched_sim": sims[n_texts_seen],
            }
        )
        matrix.append(sims)
    if rng.random() < 0.25:
        # readers must order images by matched_text_index (ties by list order), not trust the list
        order = sorted(range(len(infos)), key=lambda i: -infos[i]["matched_text_index"])
        infos, matrix = [infos[i] for i in order], [matrix[i] for i in order]
    return {"url": doc.url, "text_list": text_list, "image_info": infos, "similarity_matrix": matrix}


def write_mmc4(corpus: Corpus, path: Path) -> None:
    lines = [json.dumps(_mmc4_record(corpus, doc), ensure_ascii=False) for doc in corpus.docs]
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode())
    path.write_bytes(buf.getvalue())


def _img_html(ref: Ref) -> str:
    esc = html.escape
    src = ref.uri() if ref.inline else f"../{ref.path}"
    alt = esc(ref.alt)
    if ref.html == "lazy":
        return (
            f'<img class="lazyload" data-src="{esc(src)}" src="{PLACEHOLDER_GIF}" alt="{alt}" loading="lazy">'
        )
    if ref.html == "picture":
        return (
            f'<picture><source srcset="{esc(src)}" type="{ref.mime}">'
            f'<img src="{esc(src)}" alt="{alt}"></picture>'
        )
    if ref.html == "srcset":
        small = f"../images/{ref.small_name}"
        return (
            f'<img src="{esc(src)}" srcset="{esc(small)} 160w, {esc(src)} {ref.width}w" '
            f'sizes="(max-width: 480px) 160px, {ref.width}px" alt="{alt}">'
        )
    return f'<img src="{esc(src)}" alt="{alt}">'


def render_html(doc: Doc) -> str:
    body = []
    for block in doc.blocks:
        body.append(
            f"<p>{html.escape(block)}</p>"
            if isinstance(block, str)
            else f"<figure>{_img_html(block)}</figure>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(doc.title)}</title>\n"
        f'<link rel="canonical" href="{html.escape(doc.url)}">\n'
        "</head>\n<body>\n<article>\n" + "\n".join(body) + "\n</article>\n</body>\n</html>\n"
    )


def write_html(corpus: Corpus, folder: Path) -> None:
    folder.mkdir(parents=True)
    for doc in corpus.docs:
        (folder / f"{doc.slug}.html").write_text(render_html(doc), encoding="utf-8")
