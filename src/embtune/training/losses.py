"""Contrastive losses shared by the full-model objectives and the tuners on frozen vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    temperature: float = 0.1,
    symmetric: bool = True,
    mask: torch.Tensor | None = None,
    anchors: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised InfoNCE (NT-Xent, SimCLR) with in-batch negatives: ``a[i]`` and ``b[i]`` are two views of item i.

    Both sides are L2-normalised, so logits are cosines / ``temperature``. ``symmetric`` averages the a→b and b→a
    directions. ``mask[i, j] = True`` removes ``b[j]`` as a negative for ``a[i]`` (e.g. a duplicate or a known
    neighbour); the diagonal is never masked. ``anchors`` (bool per item) limits the loss to those items' rows (and
    columns, for the symmetric direction); the others still serve as negatives.

    >>> loss = info_nce_loss(model(view1), model(view2), temperature=0.1)
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (batch, dim) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    if mask is not None:
        mask = mask.clone()
        mask.fill_diagonal_(False)
        logits = logits.masked_fill(mask, float("-inf"))
    targets = torch.arange(len(a), device=a.device)
    if anchors is not None:
        keep = anchors.to(a.device).bool()
        if not keep.any():
            return logits.sum() * 0.0  # nothing to learn from this batch, but keep the graph for the trainer
        loss = F.cross_entropy(logits[keep], targets[keep])
        if symmetric:
            loss = (loss + F.cross_entropy(logits.T[keep], targets[keep])) / 2
        return loss
    loss = F.cross_entropy(logits, targets)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, targets)) / 2
    return loss
