"""KMeans-based metrics: cluster quality without labels, agreement with labels when there are some.

KMeans runs once per seed (the same seeds for every model compared) on L2-normalised vectors; every metric is reported
as the mean and standard deviation over seeds, because one-seed differences under about a V-measure point are noise.
"""

from __future__ import annotations

import numpy as np

from embtune.data.vectors import l2_normalize

# scikit-learn and SciPy are imported inside the functions that use them: `embtune encode` and the other commands
# that never score anything start about a second sooner without them.

SILHOUETTE_SAMPLE = 5000  # silhouette is O(n^2); above this many points it uses a fixed-seed sample
K_CANDIDATES = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200)


def kmeans_assign(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster ids from one KMeans run (k-means++, one init) on already normalised ``vectors``."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(vectors)


def _silhouette(vectors: np.ndarray, assignment: np.ndarray, sample_seed: int) -> float:
    from sklearn.metrics import silhouette_score

    if len(set(assignment.tolist())) < 2:
        return float("nan")
    sample = SILHOUETTE_SAMPLE if len(vectors) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(vectors, assignment, metric="cosine", sample_size=sample, random_state=sample_seed))


def cluster_metrics(
    vectors: np.ndarray,
    k: int,
    *,
    seeds: int | list[int] = 5,
    labels: np.ndarray | list | None = None,
    sample_seed: int = 0,
) -> dict[str, list[float]]:
    """Per-seed values of silhouette (cosine), Davies-Bouldin, Calinski-Harabasz and, with ``labels``, V-measure, NMI, ARI.

    >>> runs = cluster_metrics(vectors, k=77, labels=labels)
    >>> np.mean(runs["v_measure"]), np.std(runs["v_measure"])
    """
    x = l2_normalize(vectors)
    if not 2 <= k < len(x):
        raise ValueError(f"k={k} clusters needs at least {k + 1} vectors (have {len(x)}) and k >= 2")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    from sklearn.metrics import (adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score,
                                 normalized_mutual_info_score, v_measure_score)

    runs: dict[str, list[float]] = {"silhouette": [], "davies_bouldin": [], "calinski_harabasz": []}
    if labels is not None:
        runs.update(v_measure=[], nmi=[], ari=[])
        labels = np.asarray(labels)
    for seed in seed_list:
        assignment = kmeans_assign(x, k, seed)
        runs["silhouette"].append(_silhouette(x, assignment, sample_seed))
        if len(set(assignment.tolist())) > 1:
            runs["davies_bouldin"].append(float(davies_bouldin_score(x, assignment)))
            runs["calinski_harabasz"].append(float(calinski_harabasz_score(x, assignment)))
        if labels is not None:
            runs["v_measure"].append(float(v_measure_score(labels, assignment)))
            runs["nmi"].append(float(normalized_mutual_info_score(labels, assignment)))
            runs["ari"].append(float(adjusted_rand_score(labels, assignment)))
    return runs


def choose_k(vectors: np.ndarray, *, candidates=K_CANDIDATES, seed: int = 0) -> tuple[int, dict[int, float]]:
    """The k with the highest cosine silhouette among ``candidates`` (those below n/2), one KMeans run each.

    >>> k, sweep = choose_k(vectors)
    """
    x = l2_normalize(vectors)
    usable = [k for k in candidates if 2 <= k <= len(x) // 2]
    if not usable:
        raise ValueError(f"too few vectors ({len(x)}) to choose a number of clusters; need at least 4")
    sweep = {k: _silhouette(x, kmeans_assign(x, k, seed), seed) for k in usable}
    best = max(sweep, key=lambda k: (np.nan_to_num(sweep[k], nan=-2.0), -k))
    return best, sweep
