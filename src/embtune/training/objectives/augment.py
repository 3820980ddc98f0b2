"""augment: SimCLR for text. Two augmented views of each text, normalised InfoNCE (temperature 0.1), symmetric,
in-batch negatives; identical texts in a batch are not negatives of each other."""

from __future__ import annotations

import numpy as np

from embtune.data.augment import TEXT_AUGMENTATIONS, augment_text
from embtune.nn.losses import info_nce_loss
from embtune.training.objectives.base import Objective, duplicate_mask, embed


class AugmentObjective(Objective):
    """Items are texts, or (text, [paraphrases...]) when the user supplies paraphrases / back-translations: then the
    second view is a random paraphrase instead of an augmentation."""

    name = "augment"
    data = "texts"
    defaults = {"learning_rate": 2e-5, "batch_size": 64}
    summary = "SimCLR: two augmented views per text, normalised InfoNCE"
    default_anchor = 1.0  # instance discrimination alone spreads a strong model's clusters (bench/label_free.py)

    def __init__(self, temperature: float = 0.1, augmentations=TEXT_AUGMENTATIONS, strength: float = 0.15):
        super().__init__()
        self.temperature = temperature
        self.augmentations = tuple(augmentations)
        self.strength = strength

    def batch(self, items: list, rng: np.random.Generator):
        texts, first, second = [], [], []
        for item in items:
            text, paraphrases = (item[0], list(item[1])) if isinstance(item, tuple) else (item, [])
            texts.append(text)
            first.append(augment_text(text, rng, self.augmentations, self.strength))
            if paraphrases:
                second.append(paraphrases[int(rng.integers(len(paraphrases)))])
            else:
                second.append(augment_text(text, rng, self.augmentations, self.strength))
        return texts, first, second

    def forward(self, model, batch):
        texts, first, second = batch
        a, b = embed(model, first), embed(model, second)
        return info_nce_loss(a, b, temperature=self.temperature, mask=duplicate_mask(texts, a.device))
