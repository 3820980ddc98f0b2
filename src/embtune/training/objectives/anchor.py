"""Anchoring to the base model: any objective plus a distillation term that keeps each text near where the base model
put it (1 - cosine, or MSE, to the frozen base embedding), so general ability is not traded away for the new task."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from embtune.training.objectives.base import Objective, embed, encode_frozen, item_text, text_index


def describe_anchor(weight: float, kind: str | None = None) -> str:
    """How run logs, summaries and ``auto`` name the anchor: "anchored to the base model (weight 1, cosine)"."""
    return f"anchored to the base model (weight {weight:g}{f', {kind}' if kind else ''})"


class AnchoredObjective(Objective):
    """``inner``'s loss + ``weight`` x distance of the batch's texts to their base-model embeddings."""

    def __init__(self, inner: Objective, weight: float = 1.0, kind: str = "cosine"):
        super().__init__()
        if weight < 0 or kind not in ("cosine", "mse"):
            raise ValueError("anchor: weight must be >= 0 and kind 'cosine' or 'mse'")
        self.inner, self.weight, self.kind = inner, weight, kind
        self.name, self.data, self.defaults = inner.name, inner.data, inner.defaults
        self.length_grouping = inner.length_grouping
        self.summary = f"{inner.summary}; {describe_anchor(weight, kind)}"
        # base embeddings are recomputed from the base model in setup(), also on resume, so they need no checkpoint
        self.register_buffer("base", torch.empty(0), persistent=False)
        self._index: dict[str, int] = {}

    def setup(self, model, items: list) -> None:
        self.inner.setup(model, items)
        texts, self._index = text_index(items)
        self.base = torch.as_tensor(encode_frozen(model, texts), device=next(model.parameters()).device)

    def refresh(self, model, items: list, step: int) -> None:
        self.inner.refresh(model, items, step)

    def label_runs(self, items: list) -> tuple[list, int] | None:
        return self.inner.label_runs(items)

    def batch(self, items: list, rng: np.random.Generator):
        return self.inner.batch(items, rng), [item_text(item) for item in items]

    def forward(self, model, batch):
        inner_batch, texts = batch
        self.inner.original_embeddings = None
        loss = self.inner(model, inner_batch)
        student = getattr(self.inner, "original_embeddings", None)
        if student is None or len(student) != len(texts):
            student = embed(model, texts)
        target = self.base[torch.tensor([self._index[t] for t in texts], device=self.base.device)]
        if self.kind == "cosine":
            distance = (1 - F.cosine_similarity(student, target)).mean()
        else:
            distance = F.mse_loss(F.normalize(student, dim=-1), F.normalize(target, dim=-1))
        return loss + self.weight * distance
