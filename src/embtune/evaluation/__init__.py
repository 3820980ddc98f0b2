"""Metrics: pure functions of arrays. Label-free ones always; label-based ones on held-out data only.

Names load lazily (scikit-learn is imported on first use).
"""

from __future__ import annotations

from embtune.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
