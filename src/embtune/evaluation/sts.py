"""Pair metrics: how well cosine similarity ranks pairs by their gold similarity."""

from __future__ import annotations

import logging

import numpy as np

from embtune.data.vectors import l2_normalize
from embtune.evaluation.notices import warn_once

# scikit-learn and SciPy are imported inside the functions that use them: `embtune encode` and the other commands
# that never score anything start about a second sooner without them.

log = logging.getLogger(__name__)


def pair_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def sts_spearman(a: np.ndarray, b: np.ndarray, scores) -> float:
    """Spearman correlation between cosine(a_i, b_i) and the gold ``scores`` (the STS Benchmark protocol).

    >>> sts_spearman(vectors1, vectors2, gold)   # all-MiniLM-L6-v2 on STS-B test: 0.8203

    NaN, with a warning that says why, when either side is constant (a correlation is then undefined).
    """
    cosines, scores = pair_cosines(a, b), np.asarray(scores, dtype=np.float64)
    for values, what in ((scores, "every pair has the same gold score"), (cosines, "every pair has the same cosine")):
        if len(values) and np.ptp(values) == 0:
            warn_once(log, f"sts_spearman is undefined (null in --json): {what}")
            return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(cosines, scores).statistic)


def pair_roc_auc(a: np.ndarray, b: np.ndarray, labels) -> float:
    """ROC AUC of cosine similarity for telling similar pairs (label 1) from dissimilar ones (label 0); NaN, with a
    warning, when the labels hold one class only."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        warn_once(log, "pair_roc_auc is undefined (null in --json): every pair has the same label")
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, pair_cosines(a, b)))
