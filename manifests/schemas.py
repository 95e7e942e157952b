"""Arrow schemas of every table in the run folder (see DESIGN.md, "Core tables").

Each stage writes its tables as ``<stage>/<table>/part-NNNNN.parquet`` with exactly these schemas.
"""

from __future__ import annotations

import pyarrow as pa

IMAGES = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),  # sha256 hex of the stored bytes
        pa.field("bytes", pa.binary(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("format", pa.string(), nullable=False),  # "JPEG", "PNG", "WEBP"
        pa.field("phash", pa.uint64(), nullable=False),  # 64-bit perceptual hash (imagehash.phash)
        pa.field("source", pa.string(), nullable=False),  # first reference this image was seen under
    ]
)

CONTEXT = pa.struct(
    [
        pa.field("alt", pa.string()),  # alt text / title of the image, if any
        pa.field("text_before", pa.string()),  # nearest text before the image in the document
        pa.field("text_after", pa.string()),  # nearest text after the image
    ]
)

DOCUMENTS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),  # sha256(source)[:16]
        pa.field("source", pa.string(), nullable=False),  # document URL or path
        pa.field("image_refs", pa.list_(pa.string()), nullable=False),  # every reference, as written
        pa.field("image_ids", pa.list_(pa.string()), nullable=False),  # kept images, document order
        pa.field("positions", pa.list_(pa.int32()), nullable=False),  # index in image_refs of each kept id
        pa.field("texts", pa.list_(pa.string()), nullable=False),  # the document's text blocks, in order
    ]
)

GROUPS = pa.schema(
    [
        pa.field("group_id", pa.string(), nullable=False),  # "{doc_id}-{first position}-{n}", dot-free
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # the document's source
        pa.field("image_ids", pa.list_(pa.string()), nullable=False),  # ordered
        pa.field("positions", pa.list_(pa.int32()), nullable=False),  # index of each image in image_refs
        pa.field("context", pa.list_(CONTEXT), nullable=False),  # one per image
    ]
)

DROPS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # image_id, group_id, or "{doc_id}/{position}"
        pa.field("kind", pa.string(), nullable=False),  # "reference" | "image" | "group" | "document"
        pa.field("reason", pa.string(), nullable=False),  # a DropReason value
        pa.field("detail", pa.string(), nullable=False),  # e.g. "duplicate_of=<id>", an error message
    ]
)

SCORES = pa.schema(
    [
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),  # calibrated P(good group)
        pa.field("model", pa.string(), nullable=False),  # hash of the classifier
    ]
)

CAPTIONS = pa.schema(
    [
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("captions", pa.list_(pa.string()), nullable=False),  # one per image, same order
        pa.field("group_caption", pa.string(), nullable=False),
        pa.field("template", pa.string(), nullable=False),  # "name@version#hash"
        pa.field("backend", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("content", pa.string()),  # hash of the ordered image ids + context the caption was made from
        pa.field("kind", pa.string()),  # font | edit | series | identity | other (captioning.kinds)
        pa.field("identity", pa.map_(pa.string(), pa.string())),  # shared fields, e.g. font_name, subject
        pa.field("identity_consistent", pa.bool_()),  # the identity appears in every caption; null: none
    ]
)

LABELS = pa.schema(
    [
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # final or majority: "good" | "bad" | "tie"
        pa.field("n_annotators", pa.int32(), nullable=False),
        pa.field("agreement", pa.float32(), nullable=False),  # share of annotators agreeing with label
    ]
)

SHARD_INDEX = pa.schema(
    [
        pa.field("shard", pa.string(), nullable=False),  # file name, e.g. "train-000000.tar"
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("n", pa.int32(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
    ]
)


def embeddings_schema(dim: int) -> pa.Schema:
    """Per-image vectors, float16, L2-normalised; the encoder name and dim live in the manifest."""
    return pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float16(), dim), nullable=False),
        ]
    )
