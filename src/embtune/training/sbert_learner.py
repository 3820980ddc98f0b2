"""SbertLearner: embetter's pair fine-tuner for sentence-transformers users, running on embtune's trainer.

Same constructor and methods as ``embetter.finetune.SbertLearner`` (``fit(X1, X2, y)``, ``transform``, ``predict``,
``to_disk``), so switching is a one-line import change. Differences: it also takes a model name or folder instead of
a loaded model, trains through embtune's loop (seeded, clipped, warm-up then linear decay), and ``to_disk`` writes a
model card.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


class SbertLearner:
    """Fine-tune a sentence-transformers model so that cosine(x1, x2) matches ``y`` (1/0 or a similarity in [0, 1]).

    >>> learner = SbertLearner("all-MiniLM-L6-v2", epochs=1).fit(texts1, texts2, y)
    >>> learner.transform(["where is my card"]).shape
    (1, 384)
    """

    def __init__(
        self,
        sent_tfm=None,
        batch_size: int = 16,
        epochs: int = 1,
        warmup_steps: int = 100,
        learning_rate: float = 2e-5,
        objective: str = "cosine",
        random_state: int = 0,
    ):
        self.sent_tfm = sent_tfm
        self.batch_size = batch_size
        self.epochs = epochs
        self.warmup_steps = warmup_steps
        self.learning_rate = learning_rate
        self.objective = objective
        self.random_state = random_state

    def _model(self):
        if self.sent_tfm is None or isinstance(self.sent_tfm, (str, Path)):
            from embtune.encoders import load_encoder

            self.sent_tfm = load_encoder(str(self.sent_tfm) if self.sent_tfm else None).model
        return self.sent_tfm

    def fit(self, X1, X2, y):
        """Train on pairs ``(X1[i], X2[i])`` with targets ``y[i]``."""
        from embtune.training.objectives import make_objective
        from embtune.training.trainer import TrainConfig, train

        X1, X2, y = list(X1), list(X2), np.asarray(y, dtype=float)
        if not (len(X1) == len(X2) == len(y)):
            raise ValueError(f"X1, X2 and y must have the same length; got {len(X1)}, {len(X2)} and {len(y)}")
        if len(y) == 0:
            raise ValueError("no pairs to learn from")
        if y.min() < 0 or y.max() > 1:
            raise ValueError(f"y must be in [0, 1] (got {y.min():g} to {y.max():g}); rescale scores, e.g. y / 5")
        model = self._model()
        items = list(zip(X1, X2, y.tolist()))
        config = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                             seed=self.random_state)
        config.warmup_ratio = min(1.0, self.warmup_steps / config.total_steps(len(items)))
        with tempfile.TemporaryDirectory() as checkpoints:
            self.result_ = train(model, make_objective(self.objective, model), items, config,
                                 checkpoint_dir=Path(checkpoints))
        return self

    def transform(self, X, y=None) -> np.ndarray:
        """Embeddings of the texts ``X`` (float32, normalised)."""
        return np.asarray(self._model().encode(list(X), convert_to_numpy=True, normalize_embeddings=True,
                                                show_progress_bar=False), dtype=np.float32)

    def predict(self, X1, X2) -> np.ndarray:
        """Cosine similarity of each pair."""
        return np.sum(self.transform(X1) * self.transform(X2), axis=1)

    def to_disk(self, path) -> Path:
        """Save the fine-tuned model as a sentence-transformers folder (with a model card)."""
        from embtune.training.export import export_model

        result = getattr(self, "result_", None)
        summary = {"objective": self.objective, "steps": result.steps if result else 0, "seed": self.random_state,
                   "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                   "seconds": result.seconds if result else 0.0, "output": str(path)}
        return export_model(self._model(), Path(path), summary)
