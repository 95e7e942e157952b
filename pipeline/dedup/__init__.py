"""Deduplication within and across groups, at collection scale (``gdt dedup``).

Modules: ``hashindex`` (multi-index hashing on pHash), ``vectorindex`` (faiss ANN), ``verify`` (pixel
check that tells copies from edits), ``pairs`` (the pair rule), ``candidates`` (pairs from each source),
``clusters`` (union-find), ``boilerplate``, ``groups`` (within and across groups), ``inputs`` (reading
the run), ``stage`` (parts and the global step), ``command`` (the CLI).
"""
