"""The annotators' web form: label candidate groups good/bad, with several annotators per group.

Reads the run's ``extract/groups`` and ``extract/images`` tables (and ``classify/scores`` when present,
for most-uncertain-first ordering); writes ``RUN/labels/labels.sqlite`` (the live, append-only label
store), ``RUN/labels/index.sqlite`` (a rebuildable lookup index), ``RUN/labels/thumbs/`` (cached
thumbnails) and, on export, ``RUN/labels/labels.parquet``. The classifier never imports this package.
"""
