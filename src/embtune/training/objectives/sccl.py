"""sccl: instance contrast plus a clustering head (Zhang et al. 2021, after DEC, Xie et al. 2016).

Two augmented views per text give an InfoNCE term; a Student-t kernel softly assigns each (original) embedding to k
learnable centroids, trained with KL divergence towards the sharpened target distribution p = q^2 / f (normalised).
The centroids start from KMeans on the base model's embeddings and are dropped at export.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

from embtune.data.augment import TEXT_AUGMENTATIONS, augment_text
from embtune.data.vectors import l2_normalize
from embtune.evaluation.clustering import choose_k
from embtune.nn.losses import info_nce_loss
from embtune.training.objectives.base import Objective, duplicate_mask, embed, encode_frozen, item_text


def student_t_assignment(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """q[i, j]: probability that embedding i belongs to centroid j under a Student-t kernel with ``alpha`` dof."""
    distance = torch.cdist(z, centroids).pow(2)
    q = (1.0 + distance / alpha).pow(-(alpha + 1) / 2)
    return q / q.sum(dim=1, keepdim=True)


def sharpened_target(q: torch.Tensor) -> torch.Tensor:
    """DEC's target: square the assignments and divide by cluster frequency, so confident assignments dominate."""
    weight = q.pow(2) / q.sum(dim=0)
    return (weight / weight.sum(dim=1, keepdim=True)).detach()


class SCCLObjective(Objective):
    name = "sccl"
    data = "texts"
    defaults = {"learning_rate": 2e-5, "batch_size": 64}
    length_grouping = False  # the loss reads who shares the batch (same-label / same-cluster items)
    summary = "augmented-view InfoNCE + Student-t clustering head with KL to the sharpened target"
    default_anchor = 1.0  # instance discrimination alone spreads a strong model's clusters (bench/label_free.py)

    def __init__(self, k: int | None = None, temperature: float = 0.1, cluster_weight: float = 1.0, alpha: float = 1.0,
                 strength: float = 0.15, seed: int = 0):
        super().__init__()
        self.k, self.temperature, self.cluster_weight, self.alpha = k, temperature, cluster_weight, alpha
        self.strength, self.seed = strength, seed
        self.centroids = torch.nn.Parameter(torch.empty(0))

    def setup(self, model, items: list) -> None:
        texts = [item_text(item) for item in items]
        sample = [texts[i] for i in np.random.default_rng(self.seed).permutation(len(texts))[:5000]]
        x = l2_normalize(encode_frozen(model, sample))
        if self.k is None:
            self.k, _ = choose_k(x, seed=self.seed)
        centres = KMeans(n_clusters=self.k, n_init=3, random_state=self.seed).fit(x).cluster_centers_
        self.centroids = torch.nn.Parameter(torch.as_tensor(centres, dtype=torch.float32))

    def batch(self, items: list, rng: np.random.Generator):
        texts = [item_text(item) for item in items]
        views = [augment_text(t, rng, TEXT_AUGMENTATIONS, self.strength) for t in texts]
        others = [augment_text(t, rng, TEXT_AUGMENTATIONS, self.strength) for t in texts]
        return texts, views, others

    def forward(self, model, batch):
        texts, views, others = batch
        z = torch.nn.functional.normalize(embed(model, texts), dim=-1)
        self.original_embeddings = z
        a, b = embed(model, views), embed(model, others)
        contrast = info_nce_loss(a, b, temperature=self.temperature, mask=duplicate_mask(texts, a.device))
        q = student_t_assignment(z, self.centroids, self.alpha)
        p = sharpened_target(q)
        clustering = torch.nn.functional.kl_div(q.log(), p, reduction="batchmean")
        return contrast + self.cluster_weight * clustering
