"""supcon: supervised contrastive on labelled texts (Khosla et al. 2020, in-batch form): each text is pulled towards
another text of its label, and texts of the same label in the batch are never its negatives. What a few labels buy
(the few-shot classifier fine-tunes with it); without the label mask, MNRL on label pairs would push same-class texts
apart whenever two land in one batch."""

from __future__ import annotations

import numpy as np
import torch

from embtune.nn.losses import supcon_loss
from embtune.training.objectives.base import Objective, embed


class SupervisedContrastiveObjective(Objective):
    name = "supcon"
    data = "labelled"
    defaults = {"learning_rate": 2e-5, "batch_size": 32}
    summary = "labelled texts: pull same-label texts together, other labels are the negatives"

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError("supcon: temperature must be > 0")
        self.temperature = temperature
        self._members: dict[str, list[str]] = {}

    def setup(self, model, items: list) -> None:
        self._members = {}
        for text, label in items:
            self._members.setdefault(str(label), []).append(text)

    def batch(self, items: list, rng: np.random.Generator):
        texts = [text for text, _ in items]
        labels = [str(label) for _, label in items]
        positives = []
        for text, label in zip(texts, labels):
            mates = self._members.get(label, [text])
            others = [m for m in mates if m != text] if len(mates) > 1 else mates
            positives.append(others[int(rng.integers(len(others)))] if others else text)
        codes = {label: i for i, label in enumerate(dict.fromkeys(labels))}
        return texts, positives, torch.tensor([codes[label] for label in labels])

    def forward(self, model, batch):
        texts, positives, labels = batch
        a, b = embed(model, texts), embed(model, positives)
        self.original_embeddings = a
        return supcon_loss(a, b, labels, temperature=self.temperature)
