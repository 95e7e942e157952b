"""The fixed vocabulary of drop reasons, and a helper to build ``drops`` rows.

Every image, reference or group a stage removes gets one row in that stage's ``drops`` table.
Reasons are plain snake_case strings so that they can be grepped and counted.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

from manifests.schemas import DROPS


class DropReason(StrEnum):
    # extract: fetching and decoding references
    FETCH_ERROR = "fetch_error"  # missing file, HTTP error, refused address or connection
    FETCH_TIMEOUT = "fetch_timeout"  # no full answer within timeout_s, or cut by the part's fetch budget
    OPTED_OUT = "opted_out"  # the site asked AI crawlers to stay away (X-Robots-Tag noai, noimageai ...)
    NOT_IMAGE = "not_image"  # bytes or content type that are not a raster image (SVG, HTML, text)
    DECODE_ERROR = "decode_error"  # truncated or corrupt image data
    TOO_LARGE = "too_large"  # over the byte or pixel cap (decompression bombs)
    TOO_SMALL = "too_small"  # shorter side below min_side
    BAD_ASPECT = "bad_aspect"  # aspect ratio above max_aspect
    EMPTY_REFERENCE = "empty_reference"  # an image slot with no usable reference
    TOO_MANY_REFERENCES = "too_many_references"  # beyond max_images_per_document in one document
    MALFORMED_DOCUMENT = "malformed_document"  # a document the reader cannot interpret
    DUPLICATE_DOCUMENT = "duplicate_document"  # the same source seen again; the first one stays
    MALFORMED_REFERENCE = "malformed_reference"  # an image entry the reader cannot place in its document
    UNREADABLE_INPUT = "unreadable_input"  # a file, row group or byte range of the input that cannot be read
    # classify
    LOW_SCORE = "low_score"
    MISSING_EMBEDDING = "missing_embedding"  # a group image has no vector in embed/embeddings
    # dedup
    DUPLICATE_WITHIN_GROUP = "duplicate_within_group"
    DUPLICATE_GROUP = "duplicate_group"
    BOILERPLATE_IMAGE = "boilerplate_image"
    GROUP_TOO_SMALL = "group_too_small"  # fewer than min_group_size images left after removals
    # caption
    CAPTION_FAILED = "caption_failed"
    CAPTION_TRUNCATED = "caption_truncated"  # the reply hit max_tokens even with the raised budget
    IDENTITY_INCONSISTENT = "identity_inconsistent"  # captions disagree on the group's identity (strict)


class DropKind(StrEnum):
    REFERENCE = "reference"  # one image reference of a document ("{doc_id}/{position}")
    IMAGE = "image"
    GROUP = "group"
    DOCUMENT = "document"
    INPUT = "input"  # a piece of the input (id: the file; detail: row group or byte offset, and the error)


def drop_row(id: str, kind: DropKind, reason: DropReason, detail: str = "") -> dict[str, str]:
    return {"id": id, "kind": str(kind), "reason": str(reason), "detail": detail}


def drops_table(rows: list[dict[str, str]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=DROPS)
