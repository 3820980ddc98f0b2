"""Tensor losses as pure functions, shared by the full-model objectives and the tuners on frozen vectors."""

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


def supcon_loss(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.05) -> torch.Tensor:
    """Supervised contrastive, in-batch form: ``a[i]`` must pick ``b[i]`` (another item of its label), and items that
    share ``a[i]``'s label are never its negatives.

    a, b: (batch, dim) embeddings; labels: (batch,) integer codes. Returns a scalar.
    """
    labels = labels.to(a.device)
    same = labels.view(-1, 1) == labels.view(1, -1)
    return info_nce_loss(a, b, temperature=temperature, mask=same)


def multi_positive_supcon_loss(z: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.05) -> torch.Tensor:
    """Supervised contrastive over one view (Khosla et al. 2020, "L_out"): every other item of ``z[i]``'s label in the
    batch is a positive, every item of another label a negative; each anchor averages the log-probability of its
    positives. Anchors without a positive in the batch are left out. Needs batches that hold several items per label
    (:func:`embtune.training.batches.label_order`) and costs one forward pass per item instead of two.

    z: (batch, dim) embeddings; labels: (batch,) integer codes. Returns a scalar.
    """
    z = F.normalize(z, dim=-1)
    labels = labels.to(z.device)
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    positive = (labels.view(-1, 1) == labels.view(1, -1)) & ~eye
    counts = positive.sum(dim=1)
    keep = counts > 0
    if not keep.any():
        return logits.masked_fill(eye, 0.0).sum() * 0.0  # nothing to learn here, but keep the graph for the trainer
    log_prob = torch.log_softmax(logits, dim=1).masked_fill(~positive, 0.0)
    return -(log_prob.sum(dim=1)[keep] / counts[keep]).mean()


def cosent_loss(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor, *, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su 2022): every pair scored higher must get a higher cosine than every pair scored lower;
    ``log(1 + sum exp(scale * (cos_low - cos_high)))``.

    a, b: (pairs, dim) the two sides of each pair; scores: (pairs,) gold similarity. Returns a scalar.
    """
    cos = F.cosine_similarity(a, b) * scale
    target = scores.to(device=cos.device, dtype=cos.dtype)
    diff = cos.unsqueeze(0) - cos.unsqueeze(1)  # diff[i, j] = cos_j - cos_i
    higher = target.unsqueeze(1) > target.unsqueeze(0)  # pair i scored above pair j
    diff = diff.masked_fill(~higher, float("-inf"))
    return torch.logsumexp(torch.cat([torch.zeros(1, device=cos.device), diff.flatten()]), dim=0)


def mnrl_loss(anchors: torch.Tensor, candidates: torch.Tensor, *, temperature: float = 0.05,
              false_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Multiple-negatives ranking: anchor i must pick candidate i among all candidates (its positive first, then the
    other anchors' positives and any hard negatives after them).

    anchors: (batch, dim); candidates: (batch + hard, dim), rows 0..batch-1 the positives; false_negatives:
    (batch, batch + hard) bool, True where a candidate must not count as a negative for that anchor (e.g. the same
    text as its positive). Returns a scalar.
    """
    a = F.normalize(anchors, dim=-1)
    c = F.normalize(candidates, dim=-1)
    logits = a @ c.T / temperature
    if false_negatives is not None:
        logits = logits.masked_fill(false_negatives.to(logits.device), float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(a), device=logits.device))


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's regression (Grill et al. 2020): ``2 - 2 cos(prediction, target)``, mean over the batch; no gradient
    flows into ``target``.

    prediction, target: (batch, dim). Returns a scalar in [0, 4].
    """
    return (2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=-1)).mean()


def moco_loss(queries: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor, *, temperature: float = 0.2) -> torch.Tensor:
    """MoCo's InfoNCE: query i must pick key i among the batch's keys and the ``queue`` of earlier keys.

    queries, keys: (batch, dim), unit length; queue: (n, dim), unit length, n may be 0. Returns a scalar.
    """
    logits = queries @ torch.cat([keys, queue]).T / temperature
    return F.cross_entropy(logits, torch.arange(len(queries), device=queries.device))
