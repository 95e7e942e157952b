"""Curation pipeline: the stage runner, the ``gdt`` command line and the curation stages."""
