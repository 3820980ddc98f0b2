"""mnrl: multiple-negatives ranking loss on (anchor, positive[, negative]) pairs: each anchor must pick its positive
among every positive (and hard negative) in the batch. A positive that appears twice in a batch is not a negative."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from embtune.nn.losses import mnrl_loss
from embtune.training.objectives.base import Objective, embed


class MultipleNegativesRankingObjective(Objective):
    name = "mnrl"
    data = "pairs"
    defaults = {"learning_rate": 2e-5, "batch_size": 64}
    summary = "anchor/positive pairs, in-batch negatives (+ optional hard negatives)"

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, model, batch):
        anchors = [item[0] for item in batch]
        candidates = [item[1] for item in batch]
        hard = [item[2] for item in batch if len(item) > 2 and item[2]]
        a = embed(model, anchors)
        self.original_embeddings = F.normalize(a, dim=-1)
        # candidate j (j != i) is a false negative for anchor i when it is the same text as i's positive
        texts = candidates + hard
        same = torch.tensor([[texts[j] == candidates[i] and j != i for j in range(len(texts))] for i in range(len(a))])
        return mnrl_loss(a, embed(model, texts), temperature=self.temperature, false_negatives=same)
