"""cosine: regress cosine(text1, text2) onto a similarity score scaled to [0, 1] (mean squared error)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from embtune.training.objectives.base import Objective, embed


class CosineObjective(Objective):
    name = "cosine"
    data = "scored_pairs"
    defaults = {"learning_rate": 2e-5, "batch_size": 32}
    summary = "cosine similarity regressed on scored pairs"

    def forward(self, model, batch):
        first, second, scores = zip(*batch)
        a, b = embed(model, list(first)), embed(model, list(second))
        target = torch.tensor(scores, dtype=a.dtype, device=a.device)
        return F.mse_loss(F.cosine_similarity(a, b), target)
