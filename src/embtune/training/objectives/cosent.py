"""cosent: CoSENT ranking loss on scored pairs (Su 2022): every pair scored higher must get a higher cosine than every
pair scored lower; log(1 + sum exp(scale * (cos_low - cos_high)))."""

from __future__ import annotations

import torch

from embtune.nn.losses import cosent_loss
from embtune.training.objectives.base import Objective, embed


class CoSENTObjective(Objective):
    name = "cosent"
    data = "scored_pairs"
    defaults = {"learning_rate": 2e-5, "batch_size": 32}
    summary = "ranking of cosines follows the ranking of scores"

    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.scale = scale

    def forward(self, model, batch):
        first, second, scores = zip(*batch)
        a, b = embed(model, list(first)), embed(model, list(second))
        return cosent_loss(a, b, torch.tensor(scores), scale=self.scale)
