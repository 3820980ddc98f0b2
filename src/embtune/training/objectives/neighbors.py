"""neighbors: positives are each text's nearest neighbours under the current model (the NNCLR / SCAN idea).

A strong model already knows which texts belong together; instance discrimination (SimCSE) ignores that and pushes
every text away from every other. Here each anchor is pulled towards one of its k nearest neighbours, and in-batch
texts that are near neighbours of the anchor are not used as its negatives. The neighbour index is recomputed from the
model every ``refresh_every`` steps (exact up to 50,000 texts, faiss HNSW beyond) and saved with checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from embtune.data.vectors import nearest_neighbors
from embtune.nn.losses import info_nce_loss
from embtune.training.objectives.base import Objective, embed, encode_frozen, item_text, text_index


class NeighborsObjective(Objective):
    name = "neighbors"
    data = "texts"
    defaults = {"learning_rate": 2e-5, "batch_size": 64}
    summary = "pull each text towards its nearest neighbours; neighbours are not negatives"

    def __init__(self, k: int = 5, refresh_every: int = 50, temperature: float = 0.05, mask_neighbors: bool = True):
        super().__init__()
        if k < 1 or refresh_every < 1 or temperature <= 0:
            raise ValueError("neighbors: k and refresh_every must be >= 1 and temperature > 0")
        self.k, self.refresh_every, self.temperature, self.mask_neighbors = k, refresh_every, temperature, mask_neighbors
        self.register_buffer("neighbors", torch.empty(0, k, dtype=torch.long))
        self._texts: list[str] = []
        self._index: dict[str, int] = {}

    def setup(self, model, items: list) -> None:
        self._texts, self._index = text_index(items)

    def refresh(self, model, items: list, step: int) -> None:
        if len(self.neighbors) == len(items) and step % self.refresh_every:
            return
        vectors = encode_frozen(model, self._texts)
        found = nearest_neighbors(vectors, min(self.k, len(items) - 1))
        if found.shape[1] < self.k:  # tiny corpora: repeat the nearest to keep the buffer's shape
            found = np.concatenate([found, np.repeat(found[:, :1], self.k - found.shape[1], axis=1)], axis=1)
        self.neighbors = torch.as_tensor(found, device=self.neighbors.device)

    def batch(self, items: list, rng: np.random.Generator):
        texts = [item_text(item) for item in items]
        index = torch.tensor([self._index[t] for t in texts])
        pick = torch.as_tensor(rng.integers(0, self.k, len(texts)))
        positive_index = self.neighbors.cpu()[index, pick]
        return texts, index, positive_index

    def forward(self, model, batch):
        texts, index, positive_index = batch
        positives = [self._texts[i] for i in positive_index.tolist()]
        a, b = embed(model, texts), embed(model, positives)
        self.original_embeddings = a
        device = a.device
        index, positive_index = index.to(device), positive_index.to(device)
        # b[j] is not a negative for a[i] when it is i itself, or one of i's neighbours
        mask = positive_index.view(1, -1) == index.view(-1, 1)
        if self.mask_neighbors:
            mask |= (self.neighbors[index].unsqueeze(2) == positive_index.view(1, 1, -1)).any(dim=1)
        return info_nce_loss(a, b, temperature=self.temperature, mask=mask)
