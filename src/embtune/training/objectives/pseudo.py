"""pseudo: iterative pseudo-labels. KMeans on the current embeddings, keep the members closest to their centroid,
and pull each confident text towards another member of its cluster while its cluster-mates are not negatives
(supervised-contrastive style); unconfident texts are only negatives. Clusters are recomputed every ``refresh_every`` steps.

k is given, or chosen label-free: the k with the best cosine silhouette on the first embeddings (a documented rule,
evaluate.clustering.choose_k). Beware (../shared/FINDINGS.md): this sharpens the model's own clusters, mistakes
included; silhouette rises even when agreement with true classes does not. Judge it on held-out labels.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

from embtune.data.vectors import l2_normalize
from embtune.evaluation.clustering import choose_k
from embtune.nn.losses import info_nce_loss
from embtune.training.objectives.base import Objective, embed, encode_frozen, item_text, text_index


class PseudoLabelObjective(Objective):
    name = "pseudo"
    data = "texts"
    defaults = {"learning_rate": 2e-5, "batch_size": 64}
    length_grouping = False  # the loss reads who shares the batch (same-label / same-cluster items)
    summary = "KMeans pseudo-labels on confident members, supervised-contrastive pull"

    def __init__(self, k: int | None = None, keep: float = 0.7, refresh_every: int = 100, temperature: float = 0.05,
                 seed: int = 0):
        super().__init__()
        if not 0 < keep <= 1:
            raise ValueError("pseudo: keep must be in (0, 1]")
        self.k, self.keep, self.refresh_every, self.temperature, self.seed = k, keep, refresh_every, temperature, seed
        self.register_buffer("labels", torch.empty(0, dtype=torch.long))  # -1: not confident
        self._texts: list[str] = []
        self._index: dict[str, int] = {}
        self._members: dict[int, np.ndarray] = {}

    def setup(self, model, items: list) -> None:
        self._texts, self._index = text_index(items)

    def refresh(self, model, items: list, step: int) -> None:
        if len(self.labels) == len(items) and step % self.refresh_every:
            if not self._members:
                self._group()
            return
        x = l2_normalize(encode_frozen(model, self._texts))
        if self.k is None:
            sample = x[np.random.default_rng(self.seed).permutation(len(x))[:5000]]
            self.k, _ = choose_k(sample, seed=self.seed)
        km = KMeans(n_clusters=self.k, n_init=5, random_state=self.seed).fit(x)  # several inits: fewer merged clusters to lock in
        distance = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
        labels = km.labels_.astype(np.int64).copy()
        for c in range(self.k):  # keep the `keep` most central members of each cluster
            members = np.flatnonzero(km.labels_ == c)
            cut = int(np.ceil(self.keep * len(members)))
            labels[members[np.argsort(distance[members])[cut:]]] = -1
        self.labels = torch.as_tensor(labels, device=self.labels.device)
        self._group()

    def _group(self) -> None:
        labels = self.labels.cpu().numpy()
        self._members = {c: np.flatnonzero(labels == c) for c in np.unique(labels) if c >= 0}

    def batch(self, items: list, rng: np.random.Generator):
        texts = [item_text(item) for item in items]
        index = np.array([self._index[t] for t in texts])
        labels = self.labels.cpu().numpy()[index]
        positives = []
        for i, label in zip(index, labels):
            members = self._members.get(int(label))
            positives.append(self._texts[int(rng.choice(members))] if members is not None and len(members) > 1 else self._texts[i])
        return texts, positives, torch.as_tensor(labels)

    def forward(self, model, batch):
        texts, positives, labels = batch
        a, b = embed(model, texts), embed(model, positives)
        self.original_embeddings = a
        labels = labels.to(a.device)
        same = (labels.view(-1, 1) == labels.view(1, -1)) & (labels.view(-1, 1) >= 0)
        # Only confident members are anchors: an unconfident text paired with itself would be instance
        # discrimination without augmentation, pushing it away from everything (blurring, not sharpening).
        return info_nce_loss(a, b, temperature=self.temperature, mask=same, anchors=labels >= 0)
