"""FeedForwardTuner: a one-hidden-layer classifier on frozen vectors whose hidden layer becomes the new embedding.

A drop-in for ``embetter.finetune.FeedForwardTuner`` (same parameters and defaults), with what it gets wrong fixed:
the output layer feeds raw logits to the cross-entropy (embetter squashes them through a sigmoid first, which caps
the logits in (0, 1) and starves the gradient), ``predict``/``predict_proba`` exist, multi-label targets work, labels
may be any hashable values, results are reproducible with ``random_state``, and training stops once it stops
improving instead of always running 500 epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from embtune.nn.epochs import TrainLog, run_epochs
from embtune.tuners.base import (
    TunerBase,
    as_float_tensor,
    check_no_missing_labels,
    float64_inference,
)

ACTIVATIONS = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}
AUTO_EARLY_STOPPING_MIN_SAMPLES = 1000  # below this a 10 % validation split is too small to steer by


class FeedForwardNetwork(torch.nn.Module):
    def __init__(self, n_features: int, hidden_dim: int, n_outputs: int, activation: str):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, hidden_dim)
        self.activation = ACTIVATIONS[activation]()
        self.output = torch.nn.Linear(hidden_dim, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.hidden(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.embed(x))  # logits


class FeedForwardTuner(ClassifierMixin, TunerBase):
    """Learn a task-shaped embedding from labelled vectors: ``transform`` returns the hidden layer.

    Parameters (embetter's first four, same defaults):
        hidden_dim: size of the hidden layer, i.e. of the new embedding.
        n_epochs: maximum passes over the data.
        learning_rate: Adam step size.
        batch_size: examples per step.
        activation: hidden-layer non-linearity: "sigmoid" (embetter's), "relu", "tanh" or "gelu".
        early_stopping: True holds out ``validation_fraction`` (stratified) and keeps the weights of the best epoch;
            False stops when the training loss stops improving; "auto" is True from 1,000 examples on.
        validation_fraction, n_iter_no_change, tol: the stopping rule, as in scikit-learn's MLPClassifier;
            ``n_iter_no_change=None`` always runs ``n_epochs``.
        class_weight: None, "balanced" or {label: weight}.
        random_state: seed for initialisation, shuffling and the validation split.
        device: "auto", "cpu" or "cuda".

    ``y`` is a 1-D array of labels (multi-class) or a 2-D 0/1 indicator matrix (multi-label).

    >>> tuner = FeedForwardTuner(hidden_dim=200, random_state=0).fit(X_train, y_train)
    >>> tuned = tuner.transform(X_test)           # (n, 200) new embedding
    >>> tuner.predict(X_test)[:3], tuner.score(X_test, y_test)
    """

    def __init__(
        self,
        hidden_dim: int = 50,
        n_epochs: int = 500,
        learning_rate: float = 0.01,
        batch_size: int = 32,
        activation: str = "sigmoid",
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 10,
        tol: float = 1e-4,
        class_weight=None,
        random_state=None,
        device: str = "auto",
    ):
        self.hidden_dim = hidden_dim
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.activation = activation
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.random_state = random_state
        self.device = device

    # -- fitting ----------------------------------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}; use one of {sorted(ACTIVATIONS)}")
        for name in ("hidden_dim", "n_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if self.early_stopping not in (True, False, "auto"):
            raise ValueError(f"early_stopping must be True, False or 'auto', got {self.early_stopping!r}")

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        if self.multilabel_:
            return torch.as_tensor(y, dtype=torch.float32)
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(f"label {y[unknown][0]!r} is not among the classes this tuner was set up with: {list(self.classes_)}")
        return torch.as_tensor(np.searchsorted(self.classes_, y), dtype=torch.long)

    def _setup(self, X: np.ndarray, y: np.ndarray, classes=None) -> None:
        target = type_of_target(y)
        self.multilabel_ = target == "multilabel-indicator"
        if self.multilabel_:
            self.classes_ = np.arange(y.shape[1])
        elif target in ("binary", "multiclass"):
            self.classes_ = np.unique(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"FeedForwardTuner needs at least two classes to learn from; y has one class: {self.classes_.tolist()!r}"
                )
        else:
            raise ValueError(
                f"Unknown label type {target!r}: y must be class labels (1-D) or a 0/1 indicator matrix (2-D) for "
                "multi-label"
            )
        self._build(lambda: FeedForwardNetwork(X.shape[1], self.hidden_dim, len(self.classes_), self.activation))
        self.history_: list[float] = []

    def _loss_fn(self, y: np.ndarray):
        if self.multilabel_:
            return torch.nn.BCEWithLogitsLoss()
        weight = None
        if self.class_weight is not None:
            present = np.unique(y)
            weights = compute_class_weight(self.class_weight, classes=present, y=y)
            full = np.ones(len(self.classes_), dtype=np.float32)
            full[np.searchsorted(self.classes_, present)] = weights
            weight = torch.as_tensor(full, device=self.device_)
        return torch.nn.CrossEntropyLoss(weight=weight)

    def _train(self, X: np.ndarray, y: np.ndarray, *, allow_early_stopping: bool) -> TrainLog:
        criterion = self._loss_fn(y)
        validation = None
        use_validation = allow_early_stopping and (
            self.early_stopping is True
            or (self.early_stopping == "auto" and len(X) >= AUTO_EARLY_STOPPING_MIN_SAMPLES)
        )
        if use_validation:
            stratify = y if not self.multilabel_ and np.unique(y, return_counts=True)[1].min() >= 2 else None
            n_val = max(1, int(round(self.validation_fraction * len(X))))
            if stratify is not None and n_val < len(np.unique(y)):
                stratify = None
            train_idx, val_idx = self._validation_split(len(X), n_val, stratify=stratify)
            validation = (as_float_tensor(X[val_idx], self.device_), self._targets(y[val_idx]).to(self.device_))
            X, y = X[train_idx], y[train_idx]
        data = (as_float_tensor(X, self.device_), self._targets(y).to(self.device_))

        def loss(xb, yb):
            return criterion(self.model_(xb), yb)

        log = run_epochs(
            self.model_,
            self.optimizer_,
            loss,
            data,
            n_epochs=self.n_epochs,
            batch_size=self.batch_size,
            generator=self._generator,
            validation=validation,
            n_iter_no_change=self.n_iter_no_change if allow_early_stopping else None,
            tol=self.tol,
            name="FeedForwardTuner",
        )
        self.history_ = self.history_ + log.train_loss
        self.validation_history_ = log.val_loss
        self.n_epochs_ = log.epochs
        self.best_epoch_ = log.best_epoch
        return log

    def fit(self, X, y):
        """Fit from scratch on vectors ``X`` (n, d) and labels ``y``."""
        self._check_params()
        check_no_missing_labels(y, type(self).__name__)
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._setup(X, y)
        self._train(X, y, allow_early_stopping=True)
        return self

    def partial_fit(self, X, y, classes=None):
        """Continue training on a new batch of data for ``n_epochs`` passes (embetter semantics; no early stopping).

        The first call must pass ``classes`` (all labels that will ever appear) unless y is a multi-label matrix.
        """
        self._check_params()
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if first:
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("the first call to partial_fit needs classes=[every label that can appear]")
            self._setup(X, y, classes)
        self._train(X, y, allow_early_stopping=False)
        return self

    # -- using it ---------------------------------------------------------------------------------------------------

    def _forward(self, X, output: str) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        with torch.no_grad():  # float64: a row's output does not depend on its neighbours in X
            model, x = float64_inference(self.model_, X, self.device_)
            return model.embed(x).float().cpu().numpy() if output == "embedding" else model(x).cpu().numpy()

    def transform(self, X):
        """The hidden layer: the tuned embedding, (n, hidden_dim) float32."""
        return self._forward(X, "embedding")

    def predict_proba(self, X):
        """Class probabilities (softmax), or per-label probabilities (sigmoid) for multi-label."""
        logits = self._forward(X, "logits")
        if self.multilabel_:
            return 1 / (1 + np.exp(-logits))
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= 0.5).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    # -- persistence ------------------------------------------------------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        return {
            "n_features_in_": self.n_features_in_,
            "classes_": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "multilabel_": self.multilabel_,
            "history_": self.history_,
            "n_epochs_": self.n_epochs_,
            "best_epoch_": self.best_epoch_,
        }

    def _rebuild(self, state: dict[str, Any]) -> None:
        self.n_features_in_ = state["n_features_in_"]
        self.classes_ = np.asarray(state["classes_"], dtype=np.dtype(state["classes_dtype"]))
        self.multilabel_ = state["multilabel_"]
        self.history_ = state["history_"]
        self.n_epochs_ = state["n_epochs_"]
        self.best_epoch_ = state["best_epoch_"]
        self._build(lambda: FeedForwardNetwork(self.n_features_in_, self.hidden_dim, len(self.classes_), self.activation))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
