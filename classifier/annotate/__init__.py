"""The annotators' web form: label candidate groups good/bad, with several annotators per group.

Reads the run's ``extract/groups`` and ``extract/images`` tables (and ``classify/scores`` when present,
for most-uncertain-first ordering); writes ``RUN/labels/labels.sqlite`` (the live, append-only label
store, with sessions and review decisions), ``RUN/labels/index.sqlite`` (a rebuildable lookup
index), ``RUN/labels/thumbs/`` (cached thumbnails and zoom copies) and, on export,
``RUN/labels/labels.parquet`` with ``annotations`` and ``events``. The classifier never imports
this package.
"""
