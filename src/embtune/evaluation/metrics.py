"""One call that computes every metric the data allows, with the names used everywhere in embtune."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embtune.evaluation.clustering import cluster_metrics, choose_k
from embtune.evaluation.geometry import alignment, effective_rank, uniformity
from embtune.evaluation.notices import warn_once
from embtune.evaluation.probes import holdout_split, knn_accuracy, logreg_scores, why_not_stratified
from embtune.evaluation.sts import pair_roc_auc, sts_spearman

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means to a user: its direction and one plain sentence."""

    title: str
    higher_is_better: bool
    meaning: str
    group: str  # "clusters", "space", "labels", "pairs"


METRIC_INFO: dict[str, MetricInfo] = {
    "silhouette": MetricInfo("Silhouette (cosine)", True, "own cluster vs next one (-1..1)", "clusters"),
    "davies_bouldin": MetricInfo("Davies-Bouldin", False, "cluster spread / cluster distance", "clusters"),
    "calinski_harabasz": MetricInfo("Calinski-Harabasz", True, "between / within-cluster variance", "clusters"),
    "effective_rank": MetricInfo("Effective rank", True, "directions used (1 = collapsed)", "space"),
    "uniformity": MetricInfo("Uniformity", False, "how evenly vectors cover sphere", "space"),
    "alignment": MetricInfo("Alignment", False, "distance within similar pairs", "space"),
    "v_measure": MetricInfo("V-measure", True, "clusters agree with labels (0..1)", "labels"),
    "nmi": MetricInfo("NMI", True, "mutual info, clusters vs labels", "labels"),
    "ari": MetricInfo("ARI", True, "Rand index vs labels, 0 = chance", "labels"),
    "knn_accuracy": MetricInfo("kNN accuracy", True, "10-neighbour vote, held-out texts", "labels"),
    "logreg_accuracy": MetricInfo("Linear probe accuracy", True, "logistic regression, held out", "labels"),
    "logreg_macro_f1": MetricInfo("Linear probe macro-F1", True, "probe F1 averaged over labels", "labels"),
    "sts_spearman": MetricInfo("STS Spearman", True, "cosine ranks pairs like gold", "pairs"),
    "pair_roc_auc": MetricInfo("Pair ROC AUC", True, "cosine tells similar pairs apart", "pairs"),
}


@dataclass
class Metrics:
    """Metric values (means over KMeans seeds where seeds apply), their standard deviations, and how they were made.

    >>> m = evaluate_vectors(vectors, labels=labels)
    >>> m["v_measure"], m.std["v_measure"]
    """

    values: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": dict(self.values), "metrics_std": dict(self.std), **self.info}


@dataclass
class PairVectors:
    """Vectors of the two sides of a pair file, with gold ``scores`` or 0/1 ``labels`` when the file has them."""

    a: np.ndarray
    b: np.ndarray
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None
    positive: np.ndarray | None = None  # boolean mask of pairs that count as similar (for alignment)


def pair_vectors(pairs, encode) -> PairVectors:
    """The two sides of a :class:`~embtune.data.pairs.Pairs` file encoded in one pass by ``encode`` (texts -> vectors)."""
    both = encode(pairs.text1 + pairs.text2)
    return PairVectors(a=both[: len(pairs)], b=both[len(pairs) :], scores=pairs.scores, labels=pairs.labels,
                       positive=pairs.positive_mask())


def dropout_view_pairs(texts: list[str], vectors: np.ndarray, encode, *, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of up to ``n`` sampled texts, vectors of word-dropout copies of them) for the alignment metric when
    there is no pair file; ``encode`` maps texts to vectors."""
    from embtune.data.augment import dropout_views

    pick = np.random.default_rng(seed).permutation(len(texts))[:n]
    return vectors[pick], encode(dropout_views([texts[i] for i in pick], seed=seed))


def _put_runs(metrics: Metrics, runs: dict[str, list[float]]) -> None:
    for name, values in runs.items():
        finite = [v for v in values if np.isfinite(v)]
        if finite:
            metrics.values[name] = float(np.mean(finite))
            metrics.std[name] = float(np.std(finite))


def evaluate_vectors(
    vectors: np.ndarray,
    *,
    labels=None,
    test_vectors: np.ndarray | None = None,
    test_labels=None,
    pairs: PairVectors | None = None,
    views: tuple[np.ndarray, np.ndarray] | None = None,
    k: int | None = None,
    seeds: int = 5,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> Metrics:
    """Every metric the inputs allow; label metrics are always scored on held-out data.

    - Clusters (KMeans with seeds 0..seeds-1): on ``test_vectors`` when given, else on ``vectors``. k is ``k``, else the
      number of labels, else the silhouette-best k. With labels: V-measure, NMI, ARI too.
    - Probes (kNN, logistic regression): fitted on ``vectors``/``labels`` and scored on ``test_vectors``/``test_labels``,
      or on a ``test_fraction`` split of ``vectors`` held out from the fit (stratified by label unless a label has a
      single example or there are more labels than held-out items; ``info["probe_split"]`` says which).
    - ``pairs``: STS Spearman (scores) or ROC AUC (0/1 labels), and alignment of the similar pairs.
    - ``views``: two encodings of the same items (e.g. augmented); their alignment when there is no pair file.

    >>> m = evaluate_vectors(train_vectors, labels=train_labels, test_vectors=test_vectors, test_labels=test_labels)
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"expected a non-empty 2-D array of vectors, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinite values")
    labels = None if labels is None else np.asarray(labels)
    if labels is not None and len(labels) != len(vectors):
        raise ValueError(f"{len(labels)} labels for {len(vectors)} vectors")
    if test_vectors is not None:
        test_vectors = np.asarray(test_vectors, dtype=np.float32)
        test_labels = None if test_labels is None else np.asarray(test_labels)
    metrics = Metrics(info={"n": int(len(vectors)), "dim": int(vectors.shape[1]), "seeds": list(range(seeds))})

    # Clusters and space shape, on the held-out part when there is one.
    cluster_x, cluster_y = (test_vectors, test_labels) if test_vectors is not None else (vectors, labels)
    metrics.info["clustered_on"] = "test" if test_vectors is not None else "all"
    metrics.info["n_clustered"] = int(len(cluster_x))
    n_classes = len(set(cluster_y.tolist())) if cluster_y is not None else 0
    if k is not None:
        metrics.info["k_source"] = "given"
    elif n_classes >= 2:
        k = n_classes
        metrics.info["k_source"] = "number of labels"
    elif len(cluster_x) >= 4:
        k, sweep = choose_k(cluster_x, seed=seed)
        metrics.info["k_source"] = "best silhouette"
        metrics.info["k_sweep"] = {str(key): round(value, 4) for key, value in sweep.items()}
    if n_classes == 1:
        # One class: agreement with it says nothing (V-measure of one class is degenerate); silhouette etc. still do.
        cluster_y = None
        source = metrics.info.get("k_source")
        metrics.info["k_source"] = f"{source}; the labels have a single class" if source else "the labels have a single class"
    if k is not None and 2 <= k < len(cluster_x):
        metrics.info["k"] = int(k)
        _put_runs(metrics, cluster_metrics(cluster_x, k, seeds=seeds, labels=cluster_y, sample_seed=seed))
    else:
        metrics.info["k"] = None
        warn_once(log, f"clustering metrics skipped: {len(cluster_x)} vectors are too few for KMeans "
                       f"(it needs 2 <= k < vectors; k={k})")
    metrics.values["effective_rank"] = effective_rank(cluster_x, seed=seed)
    metrics.values["uniformity"] = uniformity(cluster_x, seed=seed)

    # Probes, never scored on what they were fitted on.
    if labels is not None and test_vectors is not None and test_labels is not None:
        train_x, train_y, test_x, test_y = vectors, labels, test_vectors, test_labels
        split = "held-out set"
    elif labels is not None and len(set(labels.tolist())) >= 2 and len(labels) >= 10:
        train, test = holdout_split(labels, test_fraction=test_fraction, seed=seed)
        train_x, train_y, test_x, test_y = vectors[train], labels[train], vectors[test], labels[test]
        how = "random" if why_not_stratified(labels, len(test)) else "stratified"
        split = f"{how} {test_fraction:.0%} held out, seed {seed}"
    else:
        train_x = None
    if train_x is not None:
        if len(set(train_y.tolist())) < 2:
            metrics.info["probes_skipped"] = "the training part has a single label"
            warn_once(log, "probes skipped: the training part has a single label")
        else:
            metrics.info["probe_split"] = split
            metrics.info["probe_train"], metrics.info["probe_test"] = int(len(train_x)), int(len(test_x))
            metrics.values["knn_accuracy"] = knn_accuracy(train_x, train_y, test_x, test_y)
            accuracy, macro_f1 = logreg_scores(train_x, train_y, test_x, test_y, seed=seed)
            metrics.values["logreg_accuracy"] = accuracy
            metrics.values["logreg_macro_f1"] = macro_f1

    # Pairs.
    if pairs is not None:
        metrics.info["pairs"] = int(len(pairs.a))
        if pairs.scores is not None:
            metrics.values["sts_spearman"] = sts_spearman(pairs.a, pairs.b, pairs.scores)
        if pairs.labels is not None and len(set(pairs.labels.tolist())) == 2:
            metrics.values["pair_roc_auc"] = pair_roc_auc(pairs.a, pairs.b, pairs.labels)
        if pairs.positive is not None and pairs.positive.any():
            metrics.values["alignment"] = alignment(pairs.a[pairs.positive], pairs.b[pairs.positive])
            metrics.info["alignment_from"] = f"{int(pairs.positive.sum())} similar pairs"
    if "alignment" not in metrics.values and views is not None:
        metrics.values["alignment"] = alignment(*views)
        metrics.info["alignment_from"] = f"{len(views[0])} texts vs word-dropout copies"
    return metrics
