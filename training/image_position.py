"""Image-position embedding: tells each image of a group where it stands, for ordered groups.

Group attention alone is permutation-equivariant: shuffling a group's images shuffles the outputs the
same way, which suits unordered groups (a font's glyphs, a product's photos) but cannot tell page 1
from page 3 of a picture book. With `model.image_position`, a learned vector per position 0..n-1 (a
table of `max_group_size` rows, zero at first so the model starts as the stock one) is added to every
token of that image right after the patch embedding (PixArt/SD3 `pos_embed`, FLUX `x_embedder`).
Rows are group-major (B*n, L, C), so an image's position is its row index modulo the context's n.
Input: a transformer with group attention installed; output: the same model with the table as its
`image_position` submodule (trained, saved and loaded with its other weights).
"""

from __future__ import annotations

import torch

from training.group_attention import GroupContext


class ImagePosition(torch.nn.Module):
    """A (max_group_size, width) table; `add(tokens)` adds row i % n to the tokens of image row i."""

    def __init__(self, max_group_size: int, width: int, context: GroupContext):
        super().__init__()
        self.table = torch.nn.Embedding(max_group_size, width)
        torch.nn.init.zeros_(self.table.weight)
        self.context = context

    def add(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B*n, L, C) image tokens -> the same plus each image's position vector."""
        n, most = self.context.group_size, self.table.num_embeddings
        if n > most:
            raise ValueError(f"groups of {n} images; the image-position table has {most} positions")
        self.context.groups(tokens.shape[0])  # a ragged batch fails loudly here, not as a wrong position
        position = torch.arange(tokens.shape[0], device=tokens.device) % n
        return tokens + self.table(position)[:, None, :].to(tokens.dtype)


def add_image_position(model: torch.nn.Module, context: GroupContext, max_group_size: int) -> ImagePosition:
    """Install the image-position table on a PixArt, SD3 or FLUX transformer and return it."""
    # FLUX's pos_embed is its rotary table (no tokens), so its patch embedder is x_embedder.
    embedder = getattr(model, "x_embedder", None) or getattr(model, "pos_embed", None)
    if embedder is None:
        raise TypeError(f"{type(model).__name__} has no patch embedder to add image positions to")
    module = ImagePosition(max_group_size, model.inner_dim, context)
    model.add_module("image_position", module)
    embedder.register_forward_hook(lambda _module, _args, output: module.add(output))
    return module
