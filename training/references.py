"""Reference conditioning: m of a group's n images are given clean (timestep 0) and carry no loss.

With m in [1, n-1] clean references the trained model edits, customises subjects and transfers style
without task-specific training (GDT, arXiv 2410.15027). A reference row's input is its clean latent
exactly, so its own noise never reaches the model, and its loss weight is zero; its tokens still
condition the other images of the group through group attention.
"""

from __future__ import annotations

import torch

from training.objective import Corrupted


def sample_references(
    groups: int, n: int, prob: float, max_references: int, generator: torch.Generator
) -> torch.Tensor:
    """(B, n) bool: with probability `prob` a group gets m ~ U[1, min(max_references, n-1)] references,
    at random positions."""
    device = generator.device
    most = min(max_references, n - 1)
    if most < 1 or prob == 0:
        return torch.zeros(groups, n, dtype=torch.bool, device=device)
    has = torch.rand(groups, generator=generator, device=device) < prob
    m = torch.randint(1, most + 1, (groups,), generator=generator, device=device) * has
    rank = torch.rand(groups, n, generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    return rank < m[:, None]


def apply_references(corrupted: Corrupted, x0: torch.Tensor, references: torch.Tensor) -> Corrupted:
    """Reference rows (R,) get x_t = x0 and timestep 0; other rows are unchanged."""
    rows = references.view(-1, 1, 1, 1)
    return Corrupted(
        x_t=torch.where(rows, x0, corrupted.x_t),
        timestep=torch.where(references, torch.zeros_like(corrupted.timestep), corrupted.timestep),
        target=corrupted.target,
    )
