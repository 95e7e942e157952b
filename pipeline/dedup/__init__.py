"""Deduplication within and across groups, at collection scale (``gdt dedup``).

Modules: ``hashindex`` (multi-index hashing on pHash), ``vectorindex`` (faiss ANN), ``verify`` (pixel
check that tells copies from edits), ``pairs`` (the pair rule), ``candidates`` (pairs from each source),
``clusters`` (dense components: no chains), ``boilerplate``, ``groups`` (within and across groups),
``inputs`` (reading the run), ``stage`` (parts and the global step), ``evaluate`` (scores against planted
truth and the copy/edit set), ``command`` (the CLI).
"""
