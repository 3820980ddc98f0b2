"""The quick metrics a training run watches on its held-out slice every few hundred steps."""

from __future__ import annotations

import numpy as np

from embtune.evaluation.clustering import cluster_metrics
from embtune.evaluation.geometry import alignment, effective_rank, mean_pairwise_cosine, uniformity
from embtune.evaluation.sts import sts_spearman


def training_metrics(
    vectors: np.ndarray,
    *,
    k: int | None,
    labels=None,
    views: tuple[np.ndarray, np.ndarray] | None = None,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    seeds: int = 2,
) -> dict[str, float]:
    """Silhouette and Davies-Bouldin at a fixed k (plus V-measure with labels), effective rank, uniformity, mean
    pairwise cosine (collapse), alignment of ``views`` and STS Spearman of ``pairs`` (a, b, scores) when given."""
    out: dict[str, float] = {}
    if k is not None and 2 <= k < len(vectors):
        runs = cluster_metrics(vectors, k, seeds=seeds, labels=labels)
        for name in ("silhouette", "davies_bouldin", "v_measure"):
            if runs.get(name):
                out[name] = float(np.nanmean(runs[name]))
    out["effective_rank"] = effective_rank(vectors)
    out["uniformity"] = uniformity(vectors)
    out["mean_cosine"] = mean_pairwise_cosine(vectors)
    if views is not None:
        out["alignment"] = alignment(*views)
    if pairs is not None:
        out["sts_spearman"] = sts_spearman(*pairs)
    return out
