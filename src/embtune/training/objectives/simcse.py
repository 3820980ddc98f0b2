"""simcse: unsupervised SimCSE. The same text twice; dropout is the only augmentation; normalised InfoNCE."""

from __future__ import annotations

from embtune.nn.losses import info_nce_loss
from embtune.training.objectives.base import Objective, duplicate_mask, embed


class SimCSEObjective(Objective):
    name = "simcse"
    data = "texts"
    defaults = {"learning_rate": 3e-5, "batch_size": 64}
    summary = "dropout noise as the only augmentation (Gao et al. 2021)"
    default_anchor = 1.0  # instance discrimination alone spreads a strong model's clusters (bench/label_free.py)

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, model, batch):
        texts = [t[0] if isinstance(t, tuple) else t for t in batch]
        a, b = embed(model, texts), embed(model, texts)  # model.train(): two different dropout masks
        self.original_embeddings = a
        return info_nce_loss(a, b, temperature=self.temperature, mask=duplicate_mask(texts, a.device))
