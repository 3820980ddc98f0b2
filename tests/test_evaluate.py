"""Metrics on arrays with known structure: planted clusters, collapse, random labels, perfect pairs."""

from __future__ import annotations

import numpy as np
import pytest

from embtune.evaluation import (
    PairVectors,
    alignment,
    choose_k,
    cluster_metrics,
    effective_rank,
    evaluate_vectors,
    holdout_split,
    mean_pairwise_cosine,
    sts_spearman,
    uniformity,
)


def planted(n_clusters=5, per=40, dim=16, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = np.concatenate([c + spread * rng.normal(size=(per, dim)) for c in centres]).astype(np.float32)
    y = np.repeat([f"c{i}" for i in range(n_clusters)], per)
    return x, y


def test_planted_clusters_are_found_and_match_labels():
    x, y = planted()
    runs = cluster_metrics(x, 5, labels=y, seeds=3)
    assert np.mean(runs["v_measure"]) > 0.95
    assert np.mean(runs["silhouette"]) > 0.8
    assert np.mean(runs["davies_bouldin"]) < 0.3
    assert len(runs["v_measure"]) == 3


def test_choose_k_recovers_planted_k():
    x, _ = planted(n_clusters=6, per=30)
    k, sweep = choose_k(x)
    assert k == 6 and sweep[6] == max(sweep.values())


def test_random_vectors_do_not_match_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    runs = cluster_metrics(x, 5, labels=rng.integers(0, 5, 200), seeds=2)
    assert np.mean(runs["v_measure"]) < 0.15


def test_effective_rank_detects_collapse_and_spread():
    rng = np.random.default_rng(0)
    line = np.outer(rng.normal(size=500), rng.normal(size=32))
    assert effective_rank(line) == pytest.approx(1.0, abs=0.01)
    assert effective_rank(rng.normal(size=(5000, 32))) > 30


def test_uniformity_alignment_and_mean_cosine():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(500, 32))
    collapsed = np.ones((500, 32)) + 1e-6 * rng.normal(size=(500, 32))
    assert uniformity(collapsed) == pytest.approx(0.0, abs=1e-3)
    assert uniformity(spread) < -3.0
    assert mean_pairwise_cosine(collapsed) == pytest.approx(1.0, abs=1e-6)
    assert abs(mean_pairwise_cosine(spread)) < 0.05
    assert alignment(spread, spread) == pytest.approx(0.0, abs=1e-9)
    assert alignment(spread, -spread) == pytest.approx(4.0)


def test_sts_spearman_is_rank_agreement_of_cosines():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(100, 8))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    other = rng.normal(size=(100, 8))
    other -= np.sum(other * a, axis=1, keepdims=True) * a  # orthogonal to a
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    angle = rng.uniform(0, np.pi / 2, 100)
    b = np.cos(angle)[:, None] * a + np.sin(angle)[:, None] * other  # cosine(a_i, b_i) = cos(angle_i)
    gold = 5 * np.cos(angle) ** 3  # any increasing function of the cosine ranks the same
    assert sts_spearman(a, b, gold) == pytest.approx(1.0)
    assert sts_spearman(a, b, -gold) == pytest.approx(-1.0)


def test_holdout_split_is_disjoint_stratified_and_seeded():
    y = np.repeat(list("abcd"), 25)
    train, test = holdout_split(y, test_fraction=0.2, seed=3)
    assert not set(train) & set(test) and len(train) + len(test) == 100
    assert sorted(np.unique(y[test], return_counts=True)[1]) == [5, 5, 5, 5]
    again = holdout_split(y, test_fraction=0.2, seed=3)
    assert (again[1] == test).all()


def test_holdout_split_says_why_it_is_not_stratified(caplog):
    y = np.array(["a"] * 30 + ["b"] * 30 + ["rare"])
    with caplog.at_level("WARNING", logger="embtune.evaluation.probes"):
        train, test = holdout_split(y, test_fraction=0.2, seed=0)
        holdout_split(y, test_fraction=0.2, seed=1)
    assert caplog.text.count("1 of 3 labels have a single example ('rare')") == 1  # once, not per split
    assert len(test) == 12 and not set(train) & set(test)
    rng = np.random.default_rng(0)
    metrics = evaluate_vectors(rng.normal(size=(61, 8)).astype(np.float32), labels=y, seeds=1)
    assert metrics.info["probe_split"] == "random 20% held out, seed 0"
    assert evaluate_vectors(rng.normal(size=(60, 8)).astype(np.float32), labels=y[:60], seeds=1).info[
        "probe_split"] == "stratified 20% held out, seed 0"


def test_probes_score_held_out_data_not_training_data():
    # Random labels in more dimensions than points: any probe memorises the training part perfectly, so only a
    # held-out score stays near chance (0.25).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 512)).astype(np.float32)
    y = rng.integers(0, 4, 400).astype(str)
    metrics = evaluate_vectors(x, labels=y, seeds=1)
    assert metrics["logreg_accuracy"] < 0.45
    assert metrics["knn_accuracy"] < 0.45
    assert metrics.info["probe_test"] == 80


def test_evaluate_vectors_full_run_is_reproducible():
    x, y = planted(per=30)
    pairs = PairVectors(a=x[:50], b=x[:50] + 0.01, scores=np.linspace(0, 5, 50), positive=np.ones(50, bool))
    first = evaluate_vectors(x, labels=y, pairs=pairs).to_dict()
    second = evaluate_vectors(x, labels=y, pairs=pairs).to_dict()
    assert first == second
    assert first["k"] == 5 and first["k_source"] == "number of labels"
    assert {"v_measure", "silhouette", "knn_accuracy", "logreg_accuracy", "sts_spearman", "alignment"} <= set(first["metrics"])
    # planted clusters: every KMeans seed finds them, so the seeds agree (a spread computed wrongly would not be ~0)
    assert first["metrics"]["v_measure"] > 0.95 and 0 <= first["metrics_std"]["v_measure"] < 0.02


def test_evaluate_vectors_uses_test_set_for_clusters_and_probes():
    x, y = planted(per=30, seed=1)
    tx, ty = planted(per=10, seed=1)
    metrics = evaluate_vectors(x, labels=y, test_vectors=tx, test_labels=ty)
    assert metrics.info["clustered_on"] == "test" and metrics.info["n_clustered"] == 50
    assert metrics.info["probe_split"] == "held-out set"
    assert metrics["logreg_accuracy"] == 1.0


def test_evaluate_vectors_without_labels_chooses_k():
    x, _ = planted(n_clusters=4, per=30)
    metrics = evaluate_vectors(x)
    assert metrics.info["k"] == 4 and metrics.info["k_source"] == "best silhouette"
    assert "v_measure" not in metrics and "knn_accuracy" not in metrics


def test_evaluate_vectors_with_a_single_label_clusters_without_it_and_says_why_probes_are_skipped(caplog, monkeypatch):
    from embtune.evaluation import notices
    from embtune.report.tables import describe_setup

    monkeypatch.setattr(notices, "_given", set())  # another test may have given the same warning in this process

    x, _ = planted(n_clusters=4, per=30)
    tx, _ = planted(n_clusters=4, per=10, seed=1)
    one = np.array(["activate_my_card"] * len(x))
    with caplog.at_level("WARNING", logger="embtune.evaluate"):
        for _ in range(2):  # a before/after comparison: each warning once
            metrics = evaluate_vectors(x, labels=one, test_vectors=tx, test_labels=one[: len(tx)])
    assert metrics.info["k"] == 4 and metrics.info["k_source"] == "best silhouette; the labels have a single class"
    assert "silhouette" in metrics and "v_measure" not in metrics and "knn_accuracy" not in metrics
    setup = describe_setup(metrics)
    assert "probes skipped: the training part has a single label" in setup and "None" not in setup
    assert caplog.text.count("probes skipped") == 1


def test_evaluate_vectors_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        evaluate_vectors(np.array([[np.nan, 1.0]] * 5))
    with pytest.raises(ValueError, match="labels for"):
        evaluate_vectors(np.ones((5, 2)), labels=["a"])
