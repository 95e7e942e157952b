"""The extract stage: a part of documents -> documents, images, candidate groups and drops tables.

Per part: every image reference is resolved, fetched and decoded once (URLs by the worker's crawler,
hundreds at once, within the part's fetch budget; decoding in threads; local files once per worker, see
``cache.py``), kept images are stored once by content, and each document's kept images are cut into
candidate groups. Pieces of input the readers could not read become ``input`` drops. The plan of parts is
kept in ``_plan.json`` for resumed runs. ``finalize`` (``finalize.py``) then keeps each image and each
document once across parts (the first occurrence in input order wins), so tables do not depend on how
parts were scheduled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import InputRef, atomic_write_json
from manifests.schemas import DOCUMENTS, DROPS, GROUPS, IMAGES
from pipeline.errors import UserError
from pipeline.extract.cache import DecodeCache
from pipeline.extract.config import ExtractConfig
from pipeline.extract.crawler import Crawler
from pipeline.extract.decode import DecodedImage
from pipeline.extract.document import Document, ImageRef
from pipeline.extract.fetch import FetchFailure, Target, resolve
from pipeline.extract.fetch_decode import fetch_and_decode
from pipeline.extract.finalize import finalize_extract
from pipeline.extract.grouping import KeptImage, candidate_groups
from pipeline.extract.inputs import InputFile, detect_format, fingerprint, is_remote, list_files, normalise
from pipeline.extract.readers import FORMATS, PartSpec, plan_parts, read_part
from pipeline.extract.retry import (
    RETRIED_REASONS,
    Previous,
    mark_failed_parts,
    previous_results,
    remove_copies,
)
from pipeline.stage import Part, Stage

BINARY_ARRAY_BYTES = 2**31 - 1  # the most bytes one Arrow binary array holds (32-bit offsets)
PLAN_CACHE = "_plan.json"  # the parts of the input, kept so that a resumed run does not plan again


@dataclass
class Worker:
    """What a worker keeps between parts."""

    crawler: Crawler
    cache: DecodeCache


def doc_id_of(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def input_uri(cfg: ExtractConfig) -> str:
    """The input as a local absolute path or a URL (``s3://bucket/prefix``, any fsspec URL)."""
    if not cfg.input:
        raise UserError("no input given: pass --input PATH (or set extract.input)")
    return normalise(cfg.input)


def local_root(cfg: ExtractConfig) -> Path:
    """Local references must stay under this folder: by default the one holding the input. The references
    of a remote input resolve against its URL, never a local path: no local folder is allowed for them."""
    if cfg.local_root:
        return Path(cfg.local_root).expanduser().resolve()
    uri = input_uri(cfg)
    return Path(os.devnull) if is_remote(uri) else Path(uri).parent


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
    uncached_outputs = frozenset({"images"})  # read by later stages, here only to remove a repeat

    def _listing(self, cfg: ExtractConfig) -> tuple[str, list[InputFile]]:
        """The input listed once per command: ``input_refs`` lists, ``plan`` reuses (and forgets) it."""
        uri = input_uri(cfg)
        cached = self.__dict__.get("_listed")
        if cached is None or cached[0] != uri:
            cached = (uri, list_files(uri))
            self._listed = cached
        return cached

    def input_refs(self, cfg: ExtractConfig, run: Path) -> list[InputRef]:
        uri, files = self._listing(cfg)
        return [InputRef(path=uri, hash=fingerprint(uri, files))]

    def plan(self, cfg: ExtractConfig, run: Path) -> list[Part]:
        uri, files = self._listing(cfg)
        self.__dict__.pop("_listed", None)  # not shipped to the workers with the stage
        fmt = detect_format(uri, files) if cfg.format == "auto" else cfg.format
        if fmt not in FORMATS:
            raise UserError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        key = {"input": uri, "fingerprint": fingerprint(uri, files), "format": fmt, "docs": cfg.docs_per_part}
        cache = run / self.name / PLAN_CACHE
        cached = json.loads(cache.read_text()) if cache.exists() else None
        if cached and cached.get("key") == key:
            specs = [PartSpec.from_json(s) for s in cached["parts"]]
        else:
            specs = plan_parts(uri, fmt, cfg.docs_per_part, files)
            atomic_write_json(cache, {"key": key, "parts": [s.to_json() for s in specs]})
        return [Part(i, spec) for i, spec in enumerate(specs)]

    def load(self, cfg: ExtractConfig, run: Path, part: Part) -> list[Document]:
        spec: PartSpec = part.payload
        return read_part(spec, cfg.mmc4_image_dir)

    def count_in(self, inputs: list[Document]) -> dict[str, int]:
        docs = [doc for doc in inputs if not doc.unreadable]
        refs = sum(1 for doc in docs for item in doc.items if isinstance(item, ImageRef))
        return {"documents": len(docs), "references": refs}

    def setup(self, cfg: ExtractConfig) -> Worker:
        """The worker's crawler (its HTTP connections outlive the part, one per actor) and decode cache."""
        return Worker(Crawler(cfg), DecodeCache(cfg.decode_cache_mb * 2**20))

    def write(
        self, cfg: ExtractConfig, inputs: list[Document], state: Worker, stage_dir: Path
    ) -> dict[str, pa.Table]:
        """The part's tables; a part that runs again for ``--retry-failed`` reuses what its earlier run
        settled (``write``, not ``run``: that needs the stage folder)."""
        previous = previous_results(stage_dir, doc_id_of(inputs[0].source)) if inputs else None
        return extract_documents(inputs, cfg, local_root(cfg), state.crawler, previous, state.cache)

    def mark_failed_parts(self, cfg: ExtractConfig, run: Path) -> tuple[int, int]:
        """For ``--retry-failed``: the parts with failed fetches run again (see ``retry.py``)."""
        parts = {p.index: p for p in self.plan(cfg, run)}

        def first_doc_id(index: int) -> str:
            return doc_id_of(self.load(cfg, run, parts[index])[0].source)

        return mark_failed_parts(run / self.name, first_doc_id)

    def finalize(self, cfg: ExtractConfig, run: Path) -> dict[str, Any]:
        counts = finalize_extract(run / self.name)
        remove_copies(run / self.name)
        return counts

    def summary_lines(self, manifest: Any) -> list[str]:
        refs = manifest.counts_in.get("references", 0)
        kept = manifest.counts_out.get("images", 0)
        lines = [f"images: {kept:,} distinct images kept from {refs:,} references"]
        failed = sum(manifest.dropped.get(reason, 0) for reason in RETRIED_REASONS)
        if failed:
            lines.append(f"retry:  {failed:,} failed fetches can be tried again with --retry-failed")
        return lines


# ---------------------------------------------------------------------------------------------------------
# One part of documents
# ---------------------------------------------------------------------------------------------------------


def _missing_file(target: Target | FetchFailure) -> bool:
    return isinstance(target, Target) and target.kind == "path" and not os.path.exists(target.value)


def extract_documents(
    docs: list[Document],
    cfg: ExtractConfig,
    root: Path,
    crawler: Crawler | None = None,
    previous: Previous | None = None,
    cache: DecodeCache | None = None,
) -> dict[str, pa.Table]:
    """One part's tables; ``crawler`` is the worker's (a throwaway one when None); ``previous`` what an
    earlier run of the part settled (only the rest is fetched again); ``cache`` the worker's decodes."""
    targets: dict[tuple[int, int], Target | FetchFailure] = {}
    resolved: dict[tuple, Target | FetchFailure] = {}  # resolving a path costs a realpath
    for d, doc in enumerate(docs):
        doc_root = Path(doc.root) if doc.root else root
        refs = [item for item in doc.items if isinstance(item, ImageRef)]
        for position, ref in enumerate(refs[: cfg.max_images_per_document]):
            key = (ref.ref, ref.fallback, doc.base, doc_root)
            if key not in resolved:
                target = resolve(ref.ref, doc.base, cfg, doc_root)
                if ref.fallback and _missing_file(target):  # a local copy never downloaded: its URL
                    target = resolve(ref.fallback, doc.base, cfg, doc_root)
                resolved[key] = target
            targets[d, position] = resolved[key]
    known = _settled_before(docs, targets, root, previous) if previous else {}
    unique = sorted(
        {t for t in targets.values() if isinstance(t, Target) and t not in known},
        key=lambda t: (t.kind, t.value),
    )
    cache = cache or DecodeCache(0)
    results = {t: r for t in unique if (r := cache.get(t)) is not None}
    own = crawler is None
    crawler = crawler or Crawler(cfg)
    try:
        fresh = fetch_and_decode([t for t in unique if t not in results], cfg, crawler)
    finally:
        if own:
            crawler.close()
    for target, result in fresh.items():
        cache.put(target, result)
    results.update(fresh)
    results.update(known)

    documents, groups, drops = [], [], []
    images: dict[str, dict[str, Any]] = {}  # image_id -> row; the first reference's source names it
    seen_docs: set[str] = set()
    for d, doc in enumerate(docs):
        if doc.unreadable:
            drops.append(drop_row(doc.source, DropKind.INPUT, DropReason.UNREADABLE_INPUT, str(doc.error)))
            continue
        doc_id = doc_id_of(doc.source)
        if doc.error is not None:
            drops.append(drop_row(doc_id, DropKind.DOCUMENT, DropReason.MALFORMED_DOCUMENT, doc.error))
            continue
        if doc_id in seen_docs:
            detail = f"source {doc.source[:200]} seen earlier in this part"
            drops.append(drop_row(doc_id, DropKind.DOCUMENT, DropReason.DUPLICATE_DOCUMENT, detail))
            continue
        seen_docs.add(doc_id)
        for detail in doc.rejected:
            drops.append(drop_row(doc_id, DropKind.REFERENCE, DropReason.MALFORMED_REFERENCE, detail))
        doc_root = Path(doc.root) if doc.root else root
        record = _document_tables(d, doc, doc_id, cfg, doc_root, targets, results, images, drops)
        documents.append(record["document"])
        groups.extend(record["groups"])
    return {
        "documents": pa.Table.from_pylist(documents, schema=DOCUMENTS),
        "images": _images_table(list(images.values())),
        "groups": pa.Table.from_pylist(groups, schema=GROUPS),
        "drops": pa.Table.from_pylist(drops, schema=DROPS),
    }


def _images_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The part's kept images. The bytes column is one join of the images' bytes: ``from_pylist`` grew it
    a value at a time and copied it again at each doubling, 3x the CPU on a part of 1,024 web images
    (their bytes, ~30 MB, are most of what a part moves through memory)."""
    bodies = [row["bytes"] for row in rows]
    offsets = np.zeros(len(bodies) + 1, dtype=np.int64)
    np.cumsum([len(body) for body in bodies], out=offsets[1:])
    if offsets[-1] > BINARY_ARRAY_BYTES:  # from_pylist splits a bigger column in chunks
        return pa.Table.from_pylist(rows, schema=IMAGES)
    data = pa.py_buffer(b"".join(bodies))
    column = pa.Array.from_buffers(
        pa.binary(), len(bodies), [None, pa.py_buffer(offsets.astype(np.int32)), data]
    )
    columns = [
        column if field.name == "bytes" else pa.array([row[field.name] for row in rows], field.type)
        for field in IMAGES
    ]
    return pa.Table.from_arrays(columns, schema=IMAGES)


def _settled_before(
    docs: list[Document],
    targets: dict[tuple[int, int], Target | FetchFailure],
    root: Path,
    previous: Previous,
) -> dict[Target, DecodedImage | FetchFailure]:
    known: dict[Target, DecodedImage | FetchFailure] = {}
    doc_ids = [doc_id_of(doc.source) for doc in docs]
    for (d, position), target in targets.items():
        if isinstance(target, Target) and target not in known:
            settled = previous.failures.get(f"{doc_ids[d]}/{position}") or previous.images.get(
                _source_of(target, root)
            )
            if settled is not None:
                known[target] = settled
    return known


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
