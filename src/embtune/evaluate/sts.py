"""Pair metrics: how well cosine similarity ranks pairs by their gold similarity."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from embtune.data.vectors import l2_normalize


def pair_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def sts_spearman(a: np.ndarray, b: np.ndarray, scores) -> float:
    """Spearman correlation between cosine(a_i, b_i) and the gold ``scores`` (the STS Benchmark protocol).

    >>> sts_spearman(vectors1, vectors2, gold)   # all-MiniLM-L6-v2 on STS-B test: 0.8203
    """
    return float(spearmanr(pair_cosines(a, b), np.asarray(scores)).statistic)


def pair_roc_auc(a: np.ndarray, b: np.ndarray, labels) -> float:
    """ROC AUC of cosine similarity for telling similar pairs (label 1) from dissimilar ones (label 0)."""
    return float(roc_auc_score(np.asarray(labels), pair_cosines(a, b)))
