"""Label-based probes, always scored on data the probe was not fitted on."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from embtune.data.vectors import l2_normalize
from embtune.evaluation.notices import warn_once

# scikit-learn and SciPy are imported inside the functions that use them: `embtune encode` and the other commands
# that never score anything start about a second sooner without them.

log = logging.getLogger(__name__)


def why_not_stratified(labels, n_test: int) -> str | None:
    """Why a split with ``n_test`` held-out items cannot be stratified by ``labels``; None when it can."""
    counts = Counter(np.asarray(labels).tolist())
    single = sorted((str(label) for label, n in counts.items() if n < 2))
    if single:
        shown = ", ".join(repr(label) for label in single[:3]) + (", ..." if len(single) > 3 else "")
        return f"{len(single)} of {len(counts)} labels have a single example ({shown})"
    if n_test < len(counts):
        return f"the held-out part ({n_test} items) is smaller than the number of labels ({len(counts)})"
    return None


def holdout_split(labels, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/test split, stratified by label when every label has at least two examples.

    >>> train, test = holdout_split(labels)
    """
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    n_test = max(1, round(test_fraction * len(labels)))
    why = why_not_stratified(labels, n_test)
    if why:
        warn_once(log, f"held-out split is random, not stratified by label: {why}")
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(index, test_size=n_test, random_state=seed, stratify=None if why else labels)
    return np.sort(train), np.sort(test)


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 10) -> float:
    """Accuracy of a k-nearest-neighbour vote (cosine) fitted on the train part, scored on the test part."""
    k = min(k, len(train_x))
    from sklearn.metrics import accuracy_score
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(train_x, train_y)
    return float(accuracy_score(test_y, model.predict(test_x)))


def logreg_scores(train_x, train_y, test_x, test_y, *, C: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """(accuracy, macro-F1) of a logistic-regression probe on L2-normalised vectors, scored on the test part."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    model = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    model.fit(l2_normalize(train_x), train_y)
    predicted = model.predict(l2_normalize(test_x))
    return float(accuracy_score(test_y, predicted)), float(f1_score(test_y, predicted, average="macro"))


def top_confusions(true, predicted, *, names=None, n: int = 5) -> list[tuple[str, str, int]]:
    """The ``n`` most frequent (true label, predicted label, count) mistakes, most frequent first; ``names`` are the
    labels in the matrix (default: those in ``true`` and ``predicted``)."""
    from sklearn.metrics import confusion_matrix

    true, predicted = np.asarray(true), np.asarray(predicted)
    names = np.unique(np.concatenate([true, predicted])) if names is None else names
    matrix = confusion_matrix(true, predicted, labels=names)
    np.fill_diagonal(matrix, 0)
    worst = np.dstack(np.unravel_index(np.argsort(matrix, axis=None)[::-1], matrix.shape))[0][:n]
    return [(str(names[i]), str(names[j]), int(matrix[i, j])) for i, j in worst if matrix[i, j] > 0]


def heldout_label_view(vectors: np.ndarray, labels, *, seeds: int = 5) -> dict[str, float]:
    """Label metrics of held-out texts alone (nothing fitted on other data): KMeans V-measure at k = number of labels
    (mean and std over ``seeds``) and leave-one-out 10-nearest-neighbour accuracy among them. {} without labels."""
    from embtune.data.vectors import nearest_neighbors
    from embtune.evaluation.clustering import cluster_metrics

    if labels is None:
        return {}
    labels = np.asarray(labels)
    n_classes = len(set(labels.tolist()))
    if not 2 <= n_classes < len(vectors):
        return {}
    v = cluster_metrics(vectors, n_classes, seeds=seeds, labels=labels)["v_measure"]
    _, codes = np.unique(labels, return_inverse=True)
    vote_codes = codes[nearest_neighbors(vectors, 10)]
    predicted = np.array([np.bincount(row, minlength=codes.max() + 1).argmax() for row in vote_codes])
    return {"v_measure": float(np.mean(v)), "v_measure_std": float(np.std(v)),
            "knn_accuracy": float(np.mean(predicted == codes))}
