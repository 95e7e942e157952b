"""Benchmarks: each module's ``main()`` measures one stage and writes ``results/<name>.md``;
``python -m benchmarks.run_all`` (``make bench``) runs them all and rewrites ``BENCHMARKS.md``."""
