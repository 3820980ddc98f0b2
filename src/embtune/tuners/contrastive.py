"""Contrastive tuners on pairs: ContrastiveLearner (pairs in) and ContrastiveTuner (labels in, pairs made inside).

Drop-ins for ``embetter.finetune.ContrastiveLearner`` / ``ContrastiveTuner`` (same parameters and defaults). Fixed here:
both are real scikit-learn estimators (``get_params``/``clone``/Pipeline work; embetter builds the inner learner in
``__init__``), ``predict`` returns cosine similarities as a numpy array, ``partial_fit`` continues training instead of
starting over, pairs are drawn reproducibly (``random_state``) and never pair an item with itself, and a singleton
class yields negatives only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from embtune.nn.epochs import run_epochs
from embtune.tuners.base import (
    TunerBase,
    as_float_tensor,
    check_no_missing_labels,
    float64_inference,
)


class ContrastiveNetwork(torch.nn.Module):
    """Linear → ReLU → Linear, shared by both sides of a pair (embetter's architecture)."""

    def __init__(self, n_features: int, shape_out: int):
        super().__init__()
        self.embed1 = torch.nn.Linear(n_features, shape_out)
        self.embed2 = torch.nn.Linear(shape_out, shape_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed2(torch.relu(self.embed1(x)))


class ContrastiveLearner(TunerBase):
    """Learn an embedding in which cosine(x1, x2) matches a target ``y`` for each pair.

    Parameters (embetter's four, same defaults):
        shape_out: size of the new embedding.
        batch_size: pairs per step.
        epochs: maximum passes over the pairs.
        learning_rate: Adam step size (embetter's 2e-5 is tuned for transformers; 1e-3 suits this small head better).
        early_stopping: hold out ``validation_fraction`` of the pairs and keep the weights of the best epoch.
        validation_fraction, n_iter_no_change, tol: the stopping rule (as in scikit-learn's MLP).
        random_state, device: as elsewhere.

    ``y`` is 1/0 (similar / not) or a similarity in [-1, 1].

    >>> learner = ContrastiveLearner(shape_out=384, epochs=50, batch_size=256).fit(X1, X2, y)
    >>> learner.predict(X1[:5], X2[:5])    # cosine similarities in the learned space
    """

    _module_attr = "network_"

    def __init__(
        self,
        shape_out: int = 300,
        batch_size: int = 16,
        epochs: int = 1,
        learning_rate: float = 2e-5,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 10,
        tol: float = 1e-4,
        random_state=None,
        device: str = "auto",
    ):
        self.shape_out = shape_out
        self.batch_size = batch_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.device = device

    def _check_pairs(self, X1, X2, y, *, reset: bool):
        X1 = check_array(X1, dtype=np.float32, input_name="X1")
        X2 = check_array(X2, dtype=np.float32, input_name="X2")
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        if not (len(X1) == len(X2) == len(y)):
            raise ValueError(f"X1, X2 and y must have the same length; got {len(X1)}, {len(X2)} and {len(y)}")
        if X1.shape[1] != X2.shape[1]:
            raise ValueError(f"X1 has {X1.shape[1]} features but X2 has {X2.shape[1]}; both sides need the same encoder")
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite values")
        if y.min() < -1 or y.max() > 1:
            raise ValueError(
                f"y must be 1/0 labels or similarities in [-1, 1] (got values from {y.min():g} to {y.max():g}); "
                "rescale scores, e.g. y / 5 for STS-B"
            )
        if not reset and X1.shape[1] != self.n_features_in_:
            raise ValueError(f"X1 has {X1.shape[1]} features, but this learner was fitted with {self.n_features_in_}")
        return X1, X2, y

    def _setup(self, n_features: int) -> None:
        self.n_features_in_ = n_features
        self._build(lambda: ContrastiveNetwork(n_features, self.shape_out))
        self.history_: list[float] = []

    def _train(self, X1, X2, y, *, allow_early_stopping: bool) -> None:
        def loss(a, b, target):
            both = self.network_(torch.cat([a, b]))  # one pass for both sides of the batch
            first, second = both[: len(a)], both[len(a) :]
            return F.mse_loss(F.cosine_similarity(first, second), target)

        def tensors(index):
            return tuple(as_float_tensor(v[index], self.device_) for v in (X1, X2, y))

        everything = np.arange(len(y))
        validation = None
        if allow_early_stopping and self.early_stopping and len(y) >= 10:
            everything, held_out = self._validation_split(len(y), self.validation_fraction)
            validation = tensors(held_out)
        log = run_epochs(
            self.network_,
            self.optimizer_,
            loss,
            tensors(everything),
            n_epochs=self.epochs,
            batch_size=self.batch_size,
            generator=self._generator,
            validation=validation,
            n_iter_no_change=self.n_iter_no_change if validation is not None else None,
            tol=self.tol,
            name=type(self).__name__,
        )
        self.history_ = self.history_ + log.train_loss
        self.n_epochs_ = log.epochs

    def fit(self, X1, X2, y):
        """Fit from scratch on pairs ``(X1[i], X2[i])`` with targets ``y[i]``."""
        X1, X2, y = self._check_pairs(X1, X2, y, reset=True)
        self._setup(X1.shape[1])
        self._train(X1, X2, y, allow_early_stopping=True)
        return self

    def partial_fit(self, X1, X2, y):
        """Continue training on more pairs (``epochs`` passes; starts a model on the first call)."""
        first = not hasattr(self, "network_")
        X1, X2, y = self._check_pairs(X1, X2, y, reset=first)
        if first:
            self._setup(X1.shape[1])
        self._train(X1, X2, y, allow_early_stopping=False)
        return self

    def transform(self, X, y=None):
        """Vectors in the learned space, (n, shape_out) float32."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float32)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but this learner was fitted with {self.n_features_in_}")
        with torch.no_grad():  # float64: a row's output does not depend on its neighbours in X
            network, x = float64_inference(self.network_, X, self.device_)
            return network(x).float().cpu().numpy()

    def predict(self, X1, X2):
        """Cosine similarity of each pair in the learned space."""
        a, b = self.transform(X1), self.transform(X2)
        return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)



def label_pairs(y: np.ndarray, *, n_neg: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs from labels: for every item one positive (another item of its class) and ``n_neg`` negatives.

    Returns ``(first, second, target)`` index arrays and 1/0 targets. An item never pairs with itself; an item alone
    in its class gets negatives only.
    """
    y = np.asarray(y)
    n = len(y)
    order = np.argsort(y, kind="stable")
    sorted_y = y[order]
    starts = np.searchsorted(sorted_y, sorted_y, side="left")
    ends = np.searchsorted(sorted_y, sorted_y, side="right")
    sizes = ends - starts
    if (sizes == n).all():
        raise ValueError("ContrastiveTuner needs at least two classes to make negative pairs")
    # Positives: a random other member of the same class (shift by 1..size-1 within the class block).
    has_partner = sizes > 1
    offset = rng.randint(1, np.maximum(sizes, 2))
    position = np.arange(n) - starts
    partner_sorted = starts + (position + offset) % np.maximum(sizes, 1)
    anchors_pos = order[has_partner]
    partners = order[partner_sorted[has_partner]]
    # Negatives: uniform over items of other classes (rejection sampling; rare repeats).
    anchors_neg = np.repeat(np.arange(n), n_neg)
    negatives = rng.randint(0, n, len(anchors_neg))
    clash = y[negatives] == y[anchors_neg]
    while clash.any():
        negatives[clash] = rng.randint(0, n, clash.sum())
        clash = y[negatives] == y[anchors_neg]
    first = np.concatenate([anchors_pos, anchors_neg])
    second = np.concatenate([partners, negatives])
    target = np.concatenate([np.ones(len(anchors_pos)), np.zeros(len(anchors_neg))]).astype(np.float32)
    return first, second, target


class ContrastiveTuner(TunerBase):
    """Labels in, pairs made inside, a :class:`ContrastiveLearner` trained on them; usable in a Pipeline.

    Parameters (embetter's four, same defaults): hidden_dim (size of the new embedding), n_neg (negatives per item),
    epochs, learning_rate; plus batch_size (embetter fixes 256), random_state and device.

    >>> pipe = make_pipeline(ContrastiveTuner(hidden_dim=100, random_state=0), LogisticRegression())
    >>> pipe.fit(X_train, y_train).score(X_test, y_test)
    """

    _module_attr = "network_"

    def __init__(
        self,
        hidden_dim: int = 50,
        n_neg: int = 3,
        epochs: int = 20,
        learning_rate: float = 0.001,
        batch_size: int = 256,
        random_state=None,
        device: str = "auto",
    ):
        self.hidden_dim = hidden_dim
        self.n_neg = n_neg
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    @property
    def network_(self):
        return self.learner_.network_

    def _new_learner(self) -> ContrastiveLearner:
        return ContrastiveLearner(
            shape_out=self.hidden_dim,
            batch_size=self.batch_size,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            random_state=self.random_state,
            device=self.device,
        )

    def _pairs(self, X: np.ndarray, y: np.ndarray):
        if not isinstance(self.n_neg, (int, np.integer)) or self.n_neg < 1:
            raise ValueError(f"n_neg must be a positive integer, got {self.n_neg!r}")
        first, second, target = label_pairs(y, n_neg=self.n_neg, rng=self._rng)
        return X[first], X[second], target

    def fit(self, X, y):
        """Make pairs from the labels ``y`` and train the learner on them from scratch."""
        check_no_missing_labels(y, type(self).__name__)
        X, y = validate_data(self, X, y, dtype=np.float32)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"ContrastiveTuner needs at least two classes; y has one class: {self.classes_.tolist()!r}")
        self._rng = check_random_state(self.random_state)
        self.learner_ = self._new_learner().fit(*self._pairs(X, y))
        return self

    def partial_fit(self, X, y, classes=None):
        """Continue training on pairs made from a new batch of labelled vectors."""
        first = not hasattr(self, "learner_")
        check_no_missing_labels(y, type(self).__name__)
        X, y = validate_data(self, X, y, dtype=np.float32, reset=first)
        if first:
            self.classes_ = np.unique(y if classes is None else classes)
            self._rng = check_random_state(self.random_state)
            self.learner_ = self._new_learner()
        self.learner_.partial_fit(*self._pairs(X, y))
        return self

    def transform(self, X, y=None):
        """Vectors in the learned space, (n, hidden_dim) float32."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self.learner_.transform(X)

    def _fitted_state(self) -> dict[str, Any]:
        return {
            "n_features_in_": self.n_features_in_,
            "classes_": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "learner": self.learner_._fitted_state(),
        }

    def _rebuild(self, state: dict[str, Any]) -> None:
        self.n_features_in_ = state["n_features_in_"]
        self.classes_ = np.asarray(state["classes_"], dtype=np.dtype(state["classes_dtype"]))
        self._rng = check_random_state(self.random_state)
        self.learner_ = self._new_learner()
        self.learner_._rebuild(state["learner"])
