"""Metrics: pure functions of arrays. Label-free ones always; label-based ones on held-out data only.

Names load lazily (scikit-learn is imported on first use).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "METRIC_INFO": "metrics",
    "MetricInfo": "metrics",
    "Metrics": "metrics",
    "PairVectors": "metrics",
    "evaluate_vectors": "metrics",
    "choose_k": "clustering",
    "cluster_metrics": "clustering",
    "alignment": "geometry",
    "effective_rank": "geometry",
    "mean_pairwise_cosine": "geometry",
    "uniformity": "geometry",
    "holdout_split": "probes",
    "knn_accuracy": "probes",
    "logreg_scores": "probes",
    "pair_roc_auc": "sts",
    "sts_spearman": "sts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
