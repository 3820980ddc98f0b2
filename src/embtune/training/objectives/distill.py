"""distill: carry a label-free tuner's gain into the model itself, so the exported folder needs no stored corpus.

A tuner such as the spectral one improves a space by looking texts up in the stored corpus. Here that tuned space is
the teacher: setup encodes the training texts with the (frozen, starting) model, fits the teacher on those vectors when
it is not fitted yet, and keeps its tuned vectors. Each step takes a batch of texts plus, for each, one of its
``k`` nearest neighbours *in the teacher's space* (so the batch holds the close pairs the teacher made closer, not
only random far ones), and pulls the model's cosine matrix of those texts onto the teacher's (mean squared difference
over the pairs, scaled by ``scale``). The model keeps its own width: only the similarities are learned, so the export
is a plain sentence-transformers folder that encodes new texts alone.

The teacher is any fitted or unfitted estimator with ``fit(X)`` / ``transform(X)`` on the model's vectors (the
public ``embtune.finetune`` passes a tuner: a folder from ``embtune tune``, or a method name fitted here).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from embtune.data.vectors import nearest_neighbors
from embtune.training.objectives.base import Objective, embed, encode_frozen, item_text, text_index


class DistillObjective(Objective):
    name = "distill"
    data = "texts"
    defaults = {"learning_rate": 5e-5, "batch_size": 32}
    summary = "match a label-free tuner's cosine similarities (batches of texts and their neighbours in its space)"

    def __init__(self, teacher=None, k: int = 10, scale: float = 100.0):
        super().__init__()
        if teacher is None or not hasattr(teacher, "transform"):
            raise ValueError("distill: teacher must be a tuner (fit / transform on the model's vectors)")
        if k < 1 or scale <= 0:
            raise ValueError("distill: k must be >= 1 and scale > 0")
        self.teacher, self.k, self.scale = teacher, int(k), float(scale)
        self.summary = f"match the cosine similarities of {type(teacher).__name__} (texts and their neighbours in its space)"
        # the teacher's vectors and neighbours are rebuilt from the starting model in setup(), also on resume
        self.register_buffer("targets", torch.empty(0), persistent=False)
        self.register_buffer("neighbors", torch.empty(0, dtype=torch.long), persistent=False)
        self._texts: list[str] = []
        self._index: dict[str, int] = {}

    def setup(self, model, items: list) -> None:
        self._texts, self._index = text_index(items)
        base = encode_frozen(model, self._texts)
        if not hasattr(self.teacher, "n_features_in_"):  # scikit-learn's mark of a fitted estimator
            self.teacher.fit(base)
        tuned = np.asarray(self.teacher.transform(base), dtype=np.float32)
        tuned /= np.maximum(np.linalg.norm(tuned, axis=1, keepdims=True), 1e-12)
        device = next(model.parameters()).device
        self.targets = torch.as_tensor(tuned, device=device)
        self.neighbors = torch.as_tensor(nearest_neighbors(tuned, min(self.k, len(tuned) - 1)), device=device)

    def batch(self, items: list, rng: np.random.Generator):
        index = torch.tensor([self._index[item_text(item)] for item in items])
        pick = torch.as_tensor(rng.integers(0, self.neighbors.shape[1], len(index)))
        return torch.cat([index, self.neighbors.cpu()[index, pick]])

    def forward(self, model, batch):
        student = F.normalize(embed(model, [self._texts[i] for i in batch.tolist()]), dim=-1)
        self.original_embeddings = student[: len(batch) // 2]
        target = self.targets[batch.to(self.targets.device)]
        off_diagonal = ~torch.eye(len(batch), dtype=torch.bool, device=student.device)
        difference = (student @ student.T - target @ target.T)[off_diagonal]
        return self.scale * difference.pow(2).mean()
