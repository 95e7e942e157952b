"""The group-DiT trainer: group attention for diffusers transformers, the shard loader, training, sampling.

Stands alone: imports manifests (the contract) but never the curation stages, classifier or captioning.
"""
