"""A label-free score for choosing between embedding spaces of the same texts, one that collapse cannot win.

``embtune auto`` ranks candidate models by this score on held-out texts. Silhouette alone can be gamed: a space that
bunches every text together keeps its silhouette (cosine distances shrink by the same factor), and one that carves the
data into a few arbitrary lumps raises it while the true structure falls apart (../shared/FINDINGS.md). So:

- **structure**: cosine silhouette of KMeans at one fixed k (chosen once, on the base model's held-out vectors),
- times **stability**: the mean adjusted Rand index between KMeans runs with different seeds, which falls when the
  clusters are arbitrary cuts of a blob rather than real groups,
- each per KMeans seed, so the score has a spread and a difference under the noise is not called a win;
- **no structure, no verdict**: when the base space has no cluster structure on this corpus (silhouette below
  MIN_STRUCTURE, e.g. review sentiment, where KMeans finds topics that are not the labels), a higher score only means
  "more clusters appeared", which says nothing about quality, so the base model is kept;
- **guards** against the base space: a candidate whose effective rank or spread (1 - mean pairwise cosine) falls below
  half the base model's is rejected as collapsed, whatever its score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score

from embtune.data.vectors import l2_normalize
from embtune.evaluation.clustering import _silhouette, kmeans_assign
from embtune.evaluation.geometry import effective_rank, mean_pairwise_cosine

MIN_STRUCTURE = 0.03  # base silhouette below this: no cluster structure for the criterion to judge
GUARD_RATIO = 0.25  # a candidate keeps at least this share of the base model's effective rank and spread (the trainer's collapse rule)


@dataclass
class SpaceScore:
    """The criterion for one space: ``score`` = mean over seeds of silhouette x stability, ``std`` its spread."""

    score: float
    std: float
    silhouette: float
    stability: float
    effective_rank: float
    spread: float  # 1 - mean pairwise cosine
    k: int
    per_seed: list[float]
    rejected: str | None = None  # why a guard refused this space; None when it passed

    def to_dict(self) -> dict:
        out = asdict(self)
        out["per_seed"] = [round(v, 5) for v in self.per_seed]
        return out


def score_space(vectors: np.ndarray, k: int, *, seeds: int = 5) -> SpaceScore:
    """The label-free criterion of one space (no guards: see :func:`guard`).

    >>> s = score_space(heldout_vectors, k=20)
    >>> s.score, s.std
    """
    x = l2_normalize(np.asarray(vectors, dtype=np.float32))
    if not 2 <= k < len(x):
        raise ValueError(f"k={k} clusters needs at least {k + 1} vectors (have {len(x)}) and k >= 2")
    runs = [kmeans_assign(x, k, seed) for seed in range(seeds)]
    silhouettes = [_silhouette(x, a, 0) for a in runs]
    stabilities = [
        float(np.mean([adjusted_rand_score(a, b) for j, b in enumerate(runs) if j != i])) if seeds > 1 else 1.0
        for i, a in enumerate(runs)
    ]
    per_seed = [float(np.nan_to_num(s, nan=0.0)) * st for s, st in zip(silhouettes, stabilities)]
    return SpaceScore(
        score=float(np.mean(per_seed)), std=float(np.std(per_seed)), silhouette=float(np.nanmean(silhouettes)),
        stability=float(np.mean(stabilities)), effective_rank=effective_rank(x),
        spread=1.0 - mean_pairwise_cosine(x), k=k, per_seed=per_seed,
    )


def guard(candidate: SpaceScore, base: SpaceScore, *, ratio: float = GUARD_RATIO) -> SpaceScore:
    """``candidate`` with ``rejected`` set when it lost too much of the base space's rank or spread."""
    if candidate.effective_rank < ratio * base.effective_rank:
        candidate.rejected = (f"collapsed: effective rank {candidate.effective_rank:.1f} is below {ratio:g} x the "
                              f"base model's {base.effective_rank:.1f}")
    elif candidate.spread < ratio * base.spread:
        candidate.rejected = (f"collapsed: spread (1 - mean cosine) {candidate.spread:.3f} is below {ratio:g} x the "
                              f"base model's {base.spread:.3f}")
    return candidate


def noise_margin(a: SpaceScore, b: SpaceScore, *, floor: float = 0.01) -> float:
    """How much one score must exceed another to count as better: two standard errors of the difference over
    the KMeans seeds, and at least ``floor`` x the larger magnitude."""
    n = max(len(a.per_seed), 1)
    se = float(np.sqrt((a.std**2 + b.std**2) / n))
    return max(2 * se, floor * max(abs(a.score), abs(b.score)))


def beats(candidate: SpaceScore, base: SpaceScore) -> bool:
    """True when ``candidate`` passed its guards and scores above ``base`` by more than the noise."""
    return candidate.rejected is None and candidate.score - base.score > noise_margin(candidate, base)


def choose(base: SpaceScore, candidates: dict[str, SpaceScore]) -> tuple[str, str]:
    """(name, reason): the best-scoring candidate that passed its guards and beats ``base`` beyond the noise, or
    "base" with the reason none did.

    >>> choose(score_space(base_x, 20), {"tuner": guard(score_space(tuned_x, 20), base)})
    """
    passed = {name: s for name, s in candidates.items() if s.rejected is None}
    if not passed:
        return "base", "no candidate could be scored" if not candidates else "every candidate was rejected as collapsed"
    name, best = max(passed.items(), key=lambda item: item[1].score)
    if base.silhouette < MIN_STRUCTURE:
        return "base", (f"the base model's held-out texts have no cluster structure (silhouette {base.silhouette:.3f} < "
                        f"{MIN_STRUCTURE}), so a label-free score cannot tell a better space from one with more lumps "
                        f"(best: {name} {best.score:.4f} vs base {base.score:.4f})")
    if beats(best, base):
        return name, (f"scores {best.score:.4f} vs the base model's {base.score:.4f}, more than the noise margin "
                      f"{noise_margin(best, base):.4f}")
    return "base", f"no candidate beat the base model beyond noise (best: {name} {best.score:.4f} vs base {base.score:.4f})"
