"""Label-based probes, always scored on data the probe was not fitted on."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from embtune.data.vectors import l2_normalize

log = logging.getLogger(__name__)


def holdout_split(labels, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/test split, stratified by label when every label has at least two examples.

    >>> train, test = holdout_split(labels)
    """
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    counts = Counter(labels.tolist())
    n_test = max(1, round(test_fraction * len(labels)))
    stratify = labels if min(counts.values()) >= 2 and n_test >= len(counts) else None
    if stratify is None:
        log.warning("held-out split is not stratified: some labels have a single example or the test part is too small")
    train, test = train_test_split(index, test_size=n_test, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 10) -> float:
    """Accuracy of a k-nearest-neighbour vote (cosine) fitted on the train part, scored on the test part."""
    k = min(k, len(train_x))
    model = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(train_x, train_y)
    return float(accuracy_score(test_y, model.predict(test_x)))


def logreg_scores(train_x, train_y, test_x, test_y, *, C: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """(accuracy, macro-F1) of a logistic-regression probe on L2-normalised vectors, scored on the test part."""
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    model.fit(l2_normalize(train_x), train_y)
    predicted = model.predict(l2_normalize(test_x))
    return float(accuracy_score(test_y, predicted)), float(f1_score(test_y, predicted, average="macro"))
