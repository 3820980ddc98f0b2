"""ct: contrastive tension with in-batch negatives (Carlsson et al. 2021). Two copies of the encoder embed the same
text; each text's two embeddings are positives, the other texts negatives. The second copy lives in the objective and
is dropped at export."""

from __future__ import annotations

import copy


from embtune.nn.losses import info_nce_loss
from embtune.training.objectives.base import Objective, duplicate_mask, embed


class ContrastiveTensionObjective(Objective):
    name = "ct"
    data = "texts"
    defaults = {"learning_rate": 1e-5, "batch_size": 32}
    summary = "two encoder copies agree on the same text, in-batch negatives"
    default_anchor = 1.0  # instance discrimination alone spreads a strong model's clusters (bench/label_free.py)

    def __init__(self, model, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature
        self.second = copy.deepcopy(model)

    def forward(self, model, batch):
        texts = [t[0] if isinstance(t, tuple) else t for t in batch]
        a, b = embed(model, texts), embed(self.second, texts)
        self.original_embeddings = a
        return info_nce_loss(a, b, temperature=self.temperature, mask=duplicate_mask(texts, a.device))

    def train(self, mode: bool = True):
        super().train(mode)
        self.second.train(mode)
        return self
