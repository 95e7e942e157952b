"""``gdt extract``: documents in, ordered images, documents, candidate groups and drops out.

readers (documents from OBELICS parquet, MMC4 jsonl, HTML pages) -> fetch (reference -> bytes) ->
decode (bytes -> a normalised, content-addressed image) -> grouping (kept images -> candidate groups),
put together per part of documents in ``stage.py``.
"""
