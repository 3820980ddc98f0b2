"""supcon: supervised contrastive on labelled texts (Khosla et al. 2020): texts of one label are pulled together and
are never each other's negatives. What a few labels buy (the few-shot classifier fine-tunes with it); without the
label mask, MNRL on label pairs would push same-class texts apart whenever two land in one batch.

Two forms. ``per_label=K`` (default 2): the trainer lays each batch out as runs of K texts of one label
(:func:`embtune.training.batches.label_order`), so every text meets K-1 positives in its own batch and the loss needs one
forward pass per text. ``per_label=0``: random batches, and each text is paired with another text of its label drawn
from the whole corpus (two forward passes per text; one positive each). On BANKING77 at 8 texts per class, K=2 with
batches of 64 matched K=0 with batches of 32 (85.1 % test accuracy each, same forward passes); K=4 lost 0.6-2.5
points (8 labels a batch leave too few negatives)."""

from __future__ import annotations

import numpy as np
import torch

from embtune.nn.losses import multi_positive_supcon_loss, supcon_loss
from embtune.training.objectives.base import Objective, embed


class SupervisedContrastiveObjective(Objective):
    name = "supcon"
    data = "labelled"
    defaults = {"learning_rate": 2e-5, "batch_size": 32}
    length_grouping = False  # the loss reads who shares the batch (same-label / same-cluster items)
    summary = "labelled texts: pull same-label texts together, other labels are the negatives"

    def __init__(self, temperature: float = 0.05, per_label: int = 2):
        super().__init__()
        if temperature <= 0:
            raise ValueError("supcon: temperature must be > 0")
        if per_label == 1 or per_label < 0:
            raise ValueError("supcon: per_label must be 0 (random batches) or >= 2 (texts of one label per batch)")
        self.temperature, self.per_label = temperature, per_label
        self._members: dict[str, list[str]] = {}

    def setup(self, model, items: list) -> None:
        self._members = {}
        for text, label in items:
            self._members.setdefault(str(label), []).append(text)

    def label_runs(self, items: list) -> tuple[list, int] | None:
        return ([str(label) for _, label in items], self.per_label) if self.per_label else None

    def batch(self, items: list, rng: np.random.Generator):
        texts = [text for text, _ in items]
        labels = [str(label) for _, label in items]
        index = {label: i for i, label in enumerate(dict.fromkeys(labels))}
        codes = torch.tensor([index[label] for label in labels])
        if self.per_label:
            return texts, None, codes
        positives = []
        for text, label in zip(texts, labels):
            mates = self._members.get(label, [text])
            others = [m for m in mates if m != text] if len(mates) > 1 else mates
            positives.append(others[int(rng.integers(len(others)))] if others else text)
        return texts, positives, codes

    def forward(self, model, batch):
        texts, positives, labels = batch
        a = embed(model, texts)
        self.original_embeddings = a
        if positives is None:
            return multi_positive_supcon_loss(a, labels, temperature=self.temperature)
        return supcon_loss(a, embed(model, positives), labels, temperature=self.temperature)
