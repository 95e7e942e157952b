"""Webdataset shards of kept groups: plan, atomic tar writing, resume, index, verify (``gdt shard``)."""
