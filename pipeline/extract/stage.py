"""The extract stage: a part of documents -> documents, images, candidate groups and drops tables.

Per part: every image reference is resolved, fetched and decoded once (threads, since most of the time is
spent waiting on I/O), kept images are stored once by content, and each document's kept images are cut
into candidate groups. ``finalize`` (``finalize.py``) then keeps each image and each document once across
parts (the first occurrence in input order wins), so tables do not depend on how parts were scheduled.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import InputRef
from manifests.schemas import DOCUMENTS, DROPS, GROUPS, IMAGES
from pipeline.errors import UserError
from pipeline.extract.config import ExtractConfig
from pipeline.extract.decode import DecodedImage, decode_image
from pipeline.extract.document import Document, ImageRef
from pipeline.extract.fetch import Fetcher, FetchFailure, Target, resolve
from pipeline.extract.finalize import finalize_extract
from pipeline.extract.grouping import KeptImage, candidate_groups
from pipeline.extract.readers import FORMATS, PartSpec, detect_format, plan_parts, read_part
from pipeline.runner import Part, Stage


def doc_id_of(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def input_path(cfg: ExtractConfig) -> Path:
    if not cfg.input:
        raise UserError("no input given: pass --input PATH (or set extract.input)")
    path = Path(cfg.input).expanduser().resolve()
    if not path.exists():
        raise UserError(f"input not found: {path}")
    return path


def local_root(cfg: ExtractConfig) -> Path:
    """Local references must stay under this folder: by default the one holding the input."""
    return Path(cfg.local_root).expanduser().resolve() if cfg.local_root else input_path(cfg).parent


def _fingerprint(path: Path) -> str:
    """Cheap identity of the input files (name, size, mtime): changes when any document file changes."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path.parent)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _source_of(target: Target, root: Path) -> str:
    """Where an image came from, portably: the URL, the path under the root, or the data URI kind."""
    if target.kind == "path":
        prefix = str(root).rstrip(os.sep) + os.sep
        path = target.value
        return path[len(prefix) :].replace(os.sep, "/") if path.startswith(prefix) else path
    if target.kind == "data":
        return target.value.split(",", 1)[0][:64]
    return target.value


def _clip(text: str | None, limit: int, tail: bool = False) -> str | None:
    if text is None:
        return None
    return text[-limit:] if tail else text[:limit]


class ExtractStage(Stage):
    name = "extract"
    Config = ExtractConfig
    # long-lived workers: as Ray Data tasks, parts waited ~0.2 s each to be scheduled (8% slower overall)
    uses_actors = True
    outputs: ClassVar[dict[str, pa.Schema]] = {
        "documents": DOCUMENTS,
        "images": IMAGES,
        "groups": GROUPS,
        "drops": DROPS,
    }

    def input_refs(self, cfg: ExtractConfig, run: Path) -> list[InputRef]:
        path = input_path(cfg)
        return [InputRef(path=str(path), hash=_fingerprint(path))]

    def plan(self, cfg: ExtractConfig, run: Path) -> list[Part]:
        path = input_path(cfg)
        fmt = detect_format(path) if cfg.format == "auto" else cfg.format
        if fmt not in FORMATS:
            raise UserError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return [Part(i, spec) for i, spec in enumerate(plan_parts(path, fmt, cfg.docs_per_part))]

    def load(self, cfg: ExtractConfig, run: Path, part: Part) -> list[Document]:
        spec: PartSpec = part.payload
        return read_part(spec, cfg.mmc4_image_dir)

    def count_in(self, inputs: list[Document]) -> dict[str, int]:
        refs = sum(1 for doc in inputs for item in doc.items if isinstance(item, ImageRef))
        return {"documents": len(inputs), "references": refs}

    def run(self, cfg: ExtractConfig, inputs: list[Document], state: Any) -> dict[str, pa.Table]:
        return extract_documents(inputs, cfg, local_root(cfg))

    def finalize(self, cfg: ExtractConfig, run: Path) -> dict[str, Any]:
        return finalize_extract(run / self.name)

    def summary_lines(self, manifest: Any) -> list[str]:
        refs = manifest.counts_in.get("references", 0)
        kept = manifest.counts_out.get("images", 0)
        return [f"images: {kept:,} distinct images kept from {refs:,} references"]


# ---------------------------------------------------------------------------------------------------------
# One part of documents
# ---------------------------------------------------------------------------------------------------------


def fetch_and_decode(targets: list[Target], cfg: ExtractConfig) -> dict[Target, DecodedImage | FetchFailure]:
    """Every target once. URLs wait on the network in ``fetch_threads``; decoding is CPU work and gets
    ``decode_threads`` (more threads than cores only fight over the GIL)."""
    fetcher = Fetcher(cfg)
    try:
        with (
            ThreadPoolExecutor(max_workers=cfg.fetch_threads) as fetch_pool,
            ThreadPoolExecutor(max_workers=cfg.decode_threads) as decode_pool,
        ):

            def decode(data: bytes | FetchFailure) -> DecodedImage | FetchFailure:
                return data if isinstance(data, FetchFailure) else decode_image(data, cfg)

            pending = {}
            for target in targets:
                if target.kind == "url":
                    fetched = fetch_pool.submit(fetcher.fetch, target)
                    pending[target] = fetched
                else:
                    pending[target] = decode_pool.submit(lambda t: decode(fetcher.fetch(t)), target)
            decoding = {}
            for target, future in pending.items():
                is_url = target.kind == "url"
                decoding[target] = decode_pool.submit(decode, future.result()) if is_url else future
            return {t: f.result() for t, f in decoding.items()}
    finally:
        fetcher.close()


def extract_documents(docs: list[Document], cfg: ExtractConfig, root: Path) -> dict[str, pa.Table]:
    targets: dict[tuple[int, int], Target | FetchFailure] = {}
    resolved: dict[tuple[str, str], Target | FetchFailure] = {}  # resolving a path costs a realpath
    for d, doc in enumerate(docs):
        refs = [item for item in doc.items if isinstance(item, ImageRef)]
        for position, ref in enumerate(refs[: cfg.max_images_per_document]):
            key = (ref.ref, doc.base)
            if key not in resolved:
                resolved[key] = resolve(ref.ref, doc.base, cfg, root)
            targets[d, position] = resolved[key]
    unique = sorted({t for t in targets.values() if isinstance(t, Target)}, key=lambda t: (t.kind, t.value))
    results = fetch_and_decode(unique, cfg)

    documents, groups, drops = [], [], []
    images: dict[str, dict[str, Any]] = {}  # image_id -> row; the first reference's source names it
    seen_docs: set[str] = set()
    for d, doc in enumerate(docs):
        doc_id = doc_id_of(doc.source)
        if doc.error is not None:
            drops.append(drop_row(doc_id, DropKind.DOCUMENT, DropReason.MALFORMED_DOCUMENT, doc.error))
            continue
        if doc_id in seen_docs:
            detail = f"source {doc.source[:200]} seen earlier in this part"
            drops.append(drop_row(doc_id, DropKind.DOCUMENT, DropReason.DUPLICATE_DOCUMENT, detail))
            continue
        seen_docs.add(doc_id)
        record = _document_tables(d, doc, doc_id, cfg, root, targets, results, images, drops)
        documents.append(record["document"])
        groups.extend(record["groups"])
    return {
        "documents": pa.Table.from_pylist(documents, schema=DOCUMENTS),
        "images": pa.Table.from_pylist(list(images.values()), schema=IMAGES),
        "groups": pa.Table.from_pylist(groups, schema=GROUPS),
        "drops": pa.Table.from_pylist(drops, schema=DROPS),
    }


def _document_tables(
    d: int,
    doc: Document,
    doc_id: str,
    cfg: ExtractConfig,
    root: Path,
    targets: dict[tuple[int, int], Target | FetchFailure],
    results: dict[Target, DecodedImage | FetchFailure],
    images: dict[str, dict[str, Any]],
    drops: list[dict[str, str]],
) -> dict[str, Any]:
    refs, texts, kept, contexts, image_ids = [], [], [], [], []
    last_text: str | None = None
    pending_text_chars = 0
    open_contexts: list[dict[str, str | None]] = []  # contexts still waiting for their text_after
    for item in doc.items:
        if isinstance(item, str):
            texts.append(item)
            last_text = item
            pending_text_chars += len(item)
            for context in open_contexts:
                context["text_after"] = _clip(item, cfg.context_chars)
            open_contexts = []
            continue
        position = len(refs)
        refs.append(item.ref)
        ref_id = f"{doc_id}/{position}"
        if position >= cfg.max_images_per_document:
            detail = f"reference {position} beyond max_images_per_document {cfg.max_images_per_document}"
            drops.append(drop_row(ref_id, DropKind.REFERENCE, DropReason.TOO_MANY_REFERENCES, detail))
            continue
        target = targets[d, position]
        result = results[target] if isinstance(target, Target) else target
        if isinstance(result, FetchFailure):
            drops.append(
                drop_row(ref_id, DropKind.REFERENCE, result.reason, f"{item.ref[:200]}: {result.detail}")
            )
            continue
        assert isinstance(target, Target)
        if result.image_id not in images:
            images[result.image_id] = {
                "image_id": result.image_id,
                "bytes": result.data,
                "width": result.width,
                "height": result.height,
                "format": result.format,
                "phash": result.phash,
                "source": _source_of(target, root),
            }
        context = {
            "alt": item.alt,
            "text_before": _clip(last_text, cfg.context_chars, tail=True),
            "text_after": None,
        }
        open_contexts.append(context)
        kept.append(KeptImage(position=position, text_chars_before=pending_text_chars))
        contexts.append(context)
        image_ids.append(result.image_id)
        pending_text_chars = 0

    groups = []
    for window in candidate_groups(
        kept, cfg.min_group_size, cfg.max_group_size, cfg.max_text_between, cfg.window_stride
    ):
        positions = [kept[i].position for i in window]
        groups.append(
            {
                "group_id": f"{doc_id}-{positions[0]}-{len(window)}",
                "doc_id": doc_id,
                "source": doc.source,
                "image_ids": [image_ids[i] for i in window],
                "positions": positions,
                "context": [contexts[i] for i in window],
            }
        )
    document = {
        "doc_id": doc_id,
        "source": doc.source,
        "image_refs": refs,
        "image_ids": image_ids,
        "positions": [k.position for k in kept],
        "texts": texts,
    }
    return {"document": document, "groups": groups}


__all__ = ["ExtractStage", "doc_id_of", "extract_documents"]
