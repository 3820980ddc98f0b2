"""Shape of the embedding space: effective rank, uniformity and alignment (Wang & Isola 2020)."""

from __future__ import annotations

import numpy as np

from embtune.data.vectors import l2_normalize


def _sample(vectors: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    if len(vectors) <= max_rows:
        return vectors
    return vectors[np.sort(np.random.default_rng(seed).choice(len(vectors), max_rows, replace=False))]


def effective_rank(vectors: np.ndarray, *, max_rows: int = 10000, seed: int = 0) -> float:
    """exp(entropy) of the normalised singular values of the centred vectors (Roy & Vetterli 2007).

    Between 1 (everything on one line: collapse) and ``dim`` (variance spread evenly over every direction).
    """
    x = _sample(np.asarray(vectors, dtype=np.float64), max_rows, seed)
    x = x - x.mean(axis=0)
    s = np.linalg.svd(x, compute_uv=False)
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s / total
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def uniformity(vectors: np.ndarray, *, t: float = 2.0, max_rows: int = 2000, seed: int = 0) -> float:
    """log E[exp(-t·‖x−y‖²)] over pairs of normalised vectors: lower means spread more evenly over the sphere."""
    x = _sample(l2_normalize(vectors), max_rows, seed)
    from scipy.spatial.distance import pdist  # inside: `embtune encode` starts without SciPy

    sq = pdist(x, metric="sqeuclidean")
    return float(np.log(np.mean(np.exp(-t * sq))))


def alignment(a: np.ndarray, b: np.ndarray, *, alpha: float = 2.0) -> float:
    """E[‖a_i − b_i‖^alpha] over positive pairs of normalised vectors: lower means similar items sit closer."""
    a, b = l2_normalize(a), l2_normalize(b)
    return float(np.mean(np.linalg.norm(a - b, axis=1) ** alpha))


def mean_pairwise_cosine(vectors: np.ndarray, *, max_rows: int = 2000, seed: int = 0) -> float:
    """Average cosine between distinct vectors; near 1 means the space has collapsed to one direction."""
    x = _sample(l2_normalize(vectors), max_rows, seed).astype(np.float64)  # float32 sums cancel badly near 1
    n = len(x)
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))
