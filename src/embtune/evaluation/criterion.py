"""A label-free score for choosing between embedding spaces of the same texts, one that collapse cannot win.

``embtune auto`` ranks candidate spaces by this score on held-out texts. A space's own cluster quality can be gamed:
a tuner that appends graph coordinates, or a fine-tune on pseudo-labels, raises the silhouette and the KMeans stability
of its own space while the true groups fall apart (measured on six labelled text sets: silhouette x stability ranked
spectral-tuner variants *against* their held-out V-measure on two of five structured sets, Spearman -0.45 and -0.33,
and chose a loser there). So the score judges a candidate's partitions by a fixed referee, the base model's
neighbourhoods:

- **neighbour agreement**: KMeans in the candidate's space at each k of a fixed grid (5, 10, 20, 40, 80; those with at
  least ten texts per cluster), and the share of each held-out text's 10 nearest neighbours *in the base model's
  space* that land in its cluster. A space that groups the texts the way their close neighbours say scores high at
  every k; one that cuts those neighbourhoods apart (arbitrary lumps, a collapsed or random space) scores low, whatever
  its own silhouette. On the same sets, over ten spectral-tuner variants each (weights 0 to 4, old and adaptive
  defaults), this ranked the spaces as the labels do (Spearman +0.72 to +0.85 on the five structured sets) and chose
  the label-best on four of them; bench/criterion_agreement.py measures it on auto's own candidates;
- per KMeans seed (the mean over the k grid), so the score has a spread and a difference under the noise is not
  called a win;
- **no structure, no verdict**: when the base space has no cluster structure on this corpus (cosine silhouette of
  KMeans at the caller's k below MIN_STRUCTURE, e.g. review sentiment, where KMeans finds topics that are not the
  labels), the base model is kept, and ``auto`` trains no candidate (it knows this once the base is scored);
- **ties go to the smaller change**: of the candidates that beat the base and sit within the noise of the best one,
  the one that keeps most of each text's 10 base-space neighbours among its own 10 (on auto's tuner candidates over
  the six text sets, bench/criterion_agreement.py: mean ΔV +2.02 vs +1.98 for the highest score, kNN accuracy mean
  -0.09 vs -0.19 and worst -0.50 vs -0.65; on BANKING77 spectral, V +3.08 kNN -0.09, over neighbourhood, +2.84 / -0.65);
- **guards** against the base space: a candidate whose effective rank or spread (1 - mean pairwise cosine) falls below
  a quarter of the base model's is rejected as collapsed, whatever its score.

The silhouette and stability (mean ARI between KMeans seeds) at the caller's k are still computed and shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score

from embtune.data.vectors import l2_normalize, nearest_neighbors
from embtune.evaluation.clustering import _silhouette, kmeans_assign
from embtune.evaluation.geometry import effective_rank, mean_pairwise_cosine

MIN_STRUCTURE = 0.03  # base silhouette below this: no cluster structure for the criterion to judge
K_GRID = (5, 10, 20, 40, 80)  # the partitions neighbour agreement is measured at
TEXTS_PER_CLUSTER = 10  # a k of the grid is used when the held-out texts give at least this many per cluster
REFEREE_NEIGHBOURS = 10  # each text's nearest neighbours in the base model's space
GUARD_RATIO = 0.25  # a candidate keeps at least this share of the base model's effective rank and spread (the trainer's collapse rule)


@dataclass
class SpaceScore:
    """The criterion for one space: ``score`` = mean over seeds of the neighbour agreement (itself the mean over the k
    grid), ``std`` its spread; silhouette and stability at the caller's k are shown beside it."""

    score: float
    std: float
    silhouette: float
    stability: float
    effective_rank: float
    spread: float  # 1 - mean pairwise cosine
    k: int
    per_seed: list[float]
    ks: list[int] | None = None  # the k grid the agreement was measured at
    rejected: str | None = None  # why a guard refused this space; None when it passed
    kept: float | None = None  # share of each text's base-space neighbours still among its own (1.0 for the base)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["per_seed"] = [round(v, 5) for v in self.per_seed]
        return out


def referee_neighbours(base_vectors: np.ndarray) -> np.ndarray:
    """Each text's nearest neighbours in the base model's space: what :func:`score_space` judges every space by."""
    return nearest_neighbors(l2_normalize(np.asarray(base_vectors, dtype=np.float32)), REFEREE_NEIGHBOURS)


def neighbours_kept(base_neighbours: np.ndarray, new_neighbours: np.ndarray) -> float:
    """The share of each text's nearest neighbours in the base space that are still among its nearest in the new one
    (1.0: the neighbourhoods did not change; what the tie rule in :func:`choose` prefers)."""
    k = min(base_neighbours.shape[1], new_neighbours.shape[1])
    hits = [len(set(a[:k]) & set(b[:k])) for a, b in zip(base_neighbours.tolist(), new_neighbours.tolist())]
    return float(np.mean(hits) / k)


def neighbour_agreement(assignment: np.ndarray, neighbours: np.ndarray) -> float:
    """The share of (text, neighbour) pairs that ``assignment`` puts in the same cluster."""
    return float(np.mean(assignment[neighbours] == assignment[:, None]))


def score_space(vectors: np.ndarray, k: int, *, seeds: int = 5, referee: np.ndarray | None = None,
                own: np.ndarray | None = None) -> SpaceScore:
    """The label-free criterion of one space (no guards: see :func:`guard`). ``referee``: the base model's
    neighbours of the same texts (:func:`referee_neighbours`); None judges the space by its own neighbours (right for
    the base model itself). ``own``: this space's own :func:`referee_neighbours` when the caller has them already (the
    base model's are its referee). ``k`` is where silhouette and stability are shown and the no-structure rule looks.

    >>> referee = referee_neighbours(base_vectors)
    >>> s = score_space(heldout_vectors, k=20, referee=referee)
    >>> s.score, s.std
    """
    x = l2_normalize(np.asarray(vectors, dtype=np.float32))
    if not 2 <= k < len(x):
        raise ValueError(f"k={k} clusters needs at least {k + 1} vectors (have {len(x)}) and k >= 2")
    own = referee_neighbours(x) if own is None else own
    referee = own if referee is None else referee
    if len(referee) != len(x):
        raise ValueError(f"the referee neighbours are for {len(referee)} texts, the space has {len(x)}")
    ks = [g for g in K_GRID if g * TEXTS_PER_CLUSTER <= len(x)] or [k]
    runs = [kmeans_assign(x, k, seed) for seed in range(seeds)]
    silhouettes = [_silhouette(x, a, 0) for a in runs]
    stabilities = [
        float(np.mean([adjusted_rand_score(a, b) for j, b in enumerate(runs) if j != i])) if seeds > 1 else 1.0
        for i, a in enumerate(runs)
    ]
    per_seed = [float(np.mean([neighbour_agreement(runs[seed] if g == k else kmeans_assign(x, g, seed), referee)
                               for g in ks])) for seed in range(seeds)]
    return SpaceScore(
        score=float(np.mean(per_seed)), std=float(np.std(per_seed)), silhouette=float(np.nanmean(silhouettes)),
        stability=float(np.mean(stabilities)), effective_rank=effective_rank(x),
        spread=1.0 - mean_pairwise_cosine(x), k=k, per_seed=per_seed, ks=ks, kept=neighbours_kept(referee, own),
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


def structure_missing(base: SpaceScore) -> str | None:
    """Why no candidate can be judged on these texts (the base space has no cluster structure here), or None. Known as
    soon as the base model is scored, so ``auto`` trains nothing it could not choose."""
    if base.silhouette < MIN_STRUCTURE:
        return (f"the base model's held-out texts have no cluster structure (silhouette {base.silhouette:.3f} < "
                f"{MIN_STRUCTURE}), so a label-free score cannot tell a better space from one with more lumps")
    return None


def choose(base: SpaceScore, candidates: dict[str, SpaceScore]) -> tuple[str, str]:
    """(name, reason): the best-scoring candidate that passed its guards and beats ``base`` beyond the noise (of those
    within the noise of it, the one that keeps most of the base model's neighbourhoods), or "base" with the reason
    none did.

    >>> choose(score_space(base_x, 20), {"tuner": guard(score_space(tuned_x, 20), base)})
    """
    passed = {name: s for name, s in candidates.items() if s.rejected is None}
    missing = structure_missing(base)
    if missing:
        best = max(passed.items(), key=lambda item: item[1].score, default=None)
        return "base", missing + (f" (best: {best[0]} {best[1].score:.4f} vs base {base.score:.4f})" if best else "")
    if not passed:
        return "base", "no candidate could be scored" if not candidates else "every candidate was rejected as collapsed"
    name, best = max(passed.items(), key=lambda item: item[1].score)
    if not beats(best, base):
        return "base", (f"no candidate beat the base model beyond noise (best: {name} {best.score:.4f} vs base "
                        f"{base.score:.4f})")
    # Ties: candidates that also beat the base and sit within the noise of the best one cannot be told apart by the
    # score, so the one that changed the base model's neighbourhoods least is kept (measured on the six text sets,
    # bench/criterion_agreement.py: no V-measure lost, and kNN accuracy no longer pays for a coin toss).
    chosen, tie = name, ""
    tied = {n: s for n, s in passed.items() if n != name and beats(s, base) and s.kept is not None
            and best.score - s.score <= noise_margin(best, s)}
    if tied and best.kept is not None:
        other, steadier = max(tied.items(), key=lambda item: item[1].kept)
        if steadier.kept > best.kept:
            chosen, tie = other, (f"; tied with {name} ({best.score:.4f}, within the noise), it keeps more of the base "
                                  f"model's neighbourhoods ({steadier.kept:.2f} vs {best.kept:.2f})")
    won = passed[chosen]
    return chosen, (f"scores {won.score:.4f} vs the base model's {base.score:.4f}, more than the noise margin "
                    f"{noise_margin(won, base):.4f}{tie}")
