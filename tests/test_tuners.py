"""Tuners on frozen vectors: the scikit-learn contract, learning on planted structure, clear errors, save/load."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from embtune.errors import EmbtuneError
from embtune.evaluation import cluster_metrics
from embtune.nn.losses import info_nce_loss, multi_positive_supcon_loss
from embtune.tuners import (
    AutoencoderTuner,
    ContrastiveLearner,
    ContrastiveTuner,
    FeedForwardTuner,
    InfoNCETuner,
    NeighborhoodTuner,
    SpectralTuner,
    TunerBase,
    load_tuner,
)
from embtune.tuners.contrastive import label_pairs


def planted(n_clusters=4, per=60, dim=24, spread=0.6, seed=0):
    """Clusters that overlap a little, so there is something to learn."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = np.concatenate([c + spread * rng.normal(size=(per, dim)) for c in centres]).astype(np.float32)
    y = np.repeat(np.array([f"class-{i}" for i in range(n_clusters)]), per)
    return x, y


SMALL = {
    "FeedForwardTuner": lambda: FeedForwardTuner(n_epochs=100, random_state=0, device="cpu"),
    "ContrastiveTuner": lambda: ContrastiveTuner(epochs=2, random_state=0, device="cpu"),
    "AutoencoderTuner": lambda: AutoencoderTuner(n_epochs=2, width=16, hidden_dim=4, random_state=0, device="cpu"),
    "InfoNCETuner": lambda: InfoNCETuner(n_epochs=2, width=16, random_state=0, device="cpu"),
    "NeighborhoodTuner": lambda: NeighborhoodTuner(n_neighbors=3),
    "SpectralTuner": lambda: SpectralTuner(n_components=4, n_neighbors=3),
}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.slow
def test_scikit_learn_estimator_checks(name):
    # ContrastiveLearner takes (X1, X2, y) pairs, a signature check_estimator cannot drive; its contract is tested below.
    check_estimator(SMALL[name]())


# -- FeedForwardTuner ----------------------------------------------------------------------------------------------------


def test_feedforward_learns_and_transforms():
    x, y = planted()
    tuner = FeedForwardTuner(hidden_dim=16, random_state=0).fit(x, y)
    assert tuner.transform(x).shape == (len(x), 16) and tuner.transform(x).dtype == np.float32
    assert tuner.score(x, y) > 0.95
    proba = tuner.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(tuner.predict(x)) <= set(y)


def test_feedforward_is_reproducible_with_random_state_and_leaves_global_rng_alone():
    x, y = planted()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = FeedForwardTuner(n_epochs=20, random_state=7).fit(x, y).transform(x)
    after = torch.rand(1)
    b = FeedForwardTuner(n_epochs=20, random_state=7).fit(x, y).transform(x)
    np.testing.assert_array_equal(a, b)
    assert before == after


def test_feedforward_early_stopping_keeps_best_epoch():
    x, y = planted(per=300, spread=1.2)
    tuner = FeedForwardTuner(hidden_dim=32, early_stopping=True, n_iter_no_change=5, random_state=0).fit(x, y)
    assert tuner.n_epochs_ < 500 and tuner.best_epoch_ <= tuner.n_epochs_
    assert min(tuner.validation_history_) == tuner.validation_history_[tuner.best_epoch_ - 1]


def test_feedforward_multilabel():
    x, y = planted(n_clusters=4)
    indicator = np.stack([np.isin(y, ["class-0", "class-1"]), np.isin(y, ["class-1", "class-2"])], axis=1).astype(int)
    tuner = FeedForwardTuner(hidden_dim=16, random_state=0).fit(x, indicator)
    assert tuner.predict(x).shape == indicator.shape
    assert (tuner.predict(x) == indicator).mean() > 0.9


def test_feedforward_partial_fit_needs_classes_then_continues():
    x, y = planted()
    tuner = FeedForwardTuner(n_epochs=5, random_state=0)
    with pytest.raises(ValueError, match="needs classes"):
        tuner.partial_fit(x[:50], y[:50])
    tuner.partial_fit(x[:120], y[:120], classes=np.unique(y))
    first = len(tuner.history_)
    tuner.partial_fit(x[120:], y[120:])
    assert len(tuner.history_) == first + 5
    with pytest.raises(ValueError, match="not among the classes"):
        tuner.partial_fit(x[:3], ["new"] * 3)


def test_feedforward_class_weight_balanced_runs():
    x, y = planted()
    keep = np.r_[0:60, 60:70, 120:240]  # class-1 rare
    tuner = FeedForwardTuner(n_epochs=30, class_weight="balanced", random_state=0).fit(x[keep], y[keep])
    assert (tuner.predict(x[60:120]) == "class-1").mean() > 0.5


@pytest.mark.parametrize(
    "bad_x, bad_y, message",
    [
        (np.full((4, 3), np.nan), ["a", "b", "a", "b"], "NaN"),
        (np.ones((4, 3)), ["a", "a", "a", "a"], "two classes"),
        (np.ones(4), ["a", "b", "a", "b"], "2D array"),
        (np.ones((4, 3)), ["a", "b"], "inconsistent numbers of samples"),
    ],
)
def test_feedforward_input_errors(bad_x, bad_y, message):
    with pytest.raises(ValueError, match=message):
        FeedForwardTuner(n_epochs=1).fit(bad_x, bad_y)


def test_wrong_width_at_transform():
    x, y = planted()
    tuner = FeedForwardTuner(n_epochs=2, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="features"):
        tuner.transform(x[:, :10])


# -- Contrastive ------------------------------------------------------------------------------------------------------


def test_label_pairs_never_pair_an_item_with_itself():
    y = np.array(["a"] * 5 + ["b"] * 3 + ["c"])  # "c" is alone
    first, second, target = label_pairs(y, n_neg=3, rng=np.random.RandomState(0))
    assert (first != second).all()
    assert (y[first][target == 1] == y[second][target == 1]).all()
    assert (y[first][target == 0] != y[second][target == 0]).all()
    assert (target == 1).sum() == 8 and (target == 0).sum() == 27  # the singleton gets negatives only


def test_contrastive_learner_learns_pair_similarity():
    x, y = planted()
    first, second, target = label_pairs(y, n_neg=1, rng=np.random.RandomState(0))
    learner = ContrastiveLearner(shape_out=16, epochs=30, batch_size=32, learning_rate=1e-3, random_state=0)
    learner.fit(x[first], x[second], target)
    similarity = learner.predict(x[first], x[second])
    assert similarity[target == 1].mean() > similarity[target == 0].mean() + 0.5
    assert learner.transform(x).shape == (len(x), 16)
    steps = len(learner.history_)
    learner.partial_fit(x[first], x[second], target)
    assert len(learner.history_) == steps + 30


def test_contrastive_learner_input_errors():
    learner = ContrastiveLearner()
    with pytest.raises(ValueError, match="same length"):
        learner.fit(np.ones((3, 2)), np.ones((2, 2)), [1, 0, 1])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        learner.fit(np.ones((2, 2)), np.ones((2, 2)), [5, 0])
    with pytest.raises(ValueError, match="features but X2"):
        learner.fit(np.ones((2, 2)), np.ones((2, 3)), [1, 0])


def test_contrastive_tuner_in_a_pipeline_and_clone():
    x, y = planted()
    pipe = make_pipeline(ContrastiveTuner(hidden_dim=16, epochs=10, random_state=0), LogisticRegression())
    assert pipe.fit(x, y).score(x, y) > 0.9
    assert clone(ContrastiveTuner(hidden_dim=7)).get_params()["hidden_dim"] == 7


# -- label-free ---------------------------------------------------------------------------------------------------------


def test_autoencoder_reconstructs_and_keeps_structure():
    x, y = planted(per=100, spread=0.3)
    tuner = AutoencoderTuner(hidden_dim=8, width=64, n_epochs=60, random_state=0).fit(x)
    assert tuner.history_[-1] < tuner.history_[0] / 2
    codes = tuner.transform(x)
    assert codes.shape == (len(x), 8)
    assert np.mean(cluster_metrics(codes, 4, labels=y, seeds=2)["v_measure"]) > 0.9


def test_infonce_neighbors_tuner_sharpens_planted_clusters():
    x, y = planted(per=100, spread=1.5, seed=3)  # neighbours mostly share a class, clusters overlap (V ~ 0.78)
    before = np.mean(cluster_metrics(x, 4, labels=y, seeds=3)["v_measure"])
    tuner = InfoNCETuner(positives="neighbors", n_neighbors=10, width=64, n_epochs=40, batch_size=64, random_state=0)
    after = np.mean(cluster_metrics(tuner.fit(x).transform(x), 4, labels=y, seeds=3)["v_measure"])
    assert tuner.history_[-1] < tuner.history_[0]
    assert after > before


def test_infonce_starts_from_identity():
    x, _ = planted()
    tuner = InfoNCETuner(n_epochs=1, learning_rate=0.0, random_state=0).fit(x)
    np.testing.assert_allclose(tuner.transform(x), x, atol=1e-6)


def test_info_nce_loss_prefers_matching_views_and_respects_mask():
    a = torch.eye(4)
    assert info_nce_loss(a, a, temperature=0.1) < 0.01
    shuffled = a[[1, 0, 3, 2]]
    assert info_nce_loss(a, shuffled, temperature=0.1) > 5
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 1] = True
    assert info_nce_loss(a, a + 0.5, mask=mask) < info_nce_loss(a, a + 0.5)


def test_multi_positive_supcon_loss_rewards_grouping_by_label_and_skips_lonely_items():
    labels = torch.tensor([0, 0, 1, 1, 2])
    grouped = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    mixed = grouped[[0, 2, 1, 3, 4]]  # each text sits with the other label
    assert multi_positive_supcon_loss(grouped, labels, temperature=0.1) < 0.01
    assert multi_positive_supcon_loss(mixed, labels, temperature=0.1) > 5
    # the item of label 2 has no positive: it changes nothing as an anchor, only as a negative
    z = torch.randn(5, 3, requires_grad=True)
    loss = multi_positive_supcon_loss(z, torch.tensor([0, 1, 2, 3, 4]))
    assert loss.item() == 0.0
    loss.backward()  # no positive anywhere: a zero loss that still backpropagates
    assert z.grad is not None


# -- persistence --------------------------------------------------------------------------------------------------------


FITTED = {
    "FeedForwardTuner": lambda x, y: FeedForwardTuner(n_epochs=5, random_state=0).fit(x, y),
    "ContrastiveTuner": lambda x, y: ContrastiveTuner(epochs=3, random_state=0).fit(x, y),
    "AutoencoderTuner": lambda x, y: AutoencoderTuner(n_epochs=3, width=32, hidden_dim=8, random_state=0).fit(x),
    "InfoNCETuner": lambda x, y: InfoNCETuner(n_epochs=3, width=32, random_state=0).fit(x),
    "NeighborhoodTuner": lambda x, y: NeighborhoodTuner(max_corpus=100).fit(x),
    "SpectralTuner": lambda x, y: SpectralTuner(n_components=8, max_corpus=100).fit(x),
}


@pytest.mark.parametrize("name", sorted(FITTED))
def test_save_load_and_pickle_give_identical_outputs(name, tmp_path):
    x, y = planted()
    tuner = FITTED[name](x, y)
    tuner.save(tmp_path / "t")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_tuner(tmp_path / "t")
    assert type(loaded) is type(tuner) and loaded.get_params() == tuner.get_params()
    np.testing.assert_array_equal(loaded.transform(x), tuner.transform(x))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(tuner)).transform(x), tuner.transform(x))
    if name == "FeedForwardTuner":
        assert (FeedForwardTuner.load(tmp_path / "t").predict(x) == tuner.predict(x)).all()


def test_loading_refuses_unknown_classes_and_wrong_types(tmp_path):
    x, y = planted()
    FeedForwardTuner(n_epochs=2, random_state=0).fit(x, y).save(tmp_path / "t")
    with pytest.raises(EmbtuneError, match="not a AutoencoderTuner"):
        AutoencoderTuner.load(tmp_path / "t")
    config = (tmp_path / "t" / "config.json").read_text().replace('"FeedForwardTuner"', '"os.system"')
    (tmp_path / "t" / "config.json").write_text(config)
    with pytest.raises(EmbtuneError, match="unknown tuner class 'os.system'"):
        TunerBase.load(tmp_path / "t")
    with pytest.raises(EmbtuneError, match="not a saved tuner"):
        load_tuner(tmp_path)


# -- NeighborhoodTuner ---------------------------------------------------------------------------------------------------


def test_neighborhood_tightens_planted_clusters_on_held_out_vectors():
    x, y = planted(n_clusters=6, per=80, dim=64, spread=2.0)  # overlapping: KMeans alone gets V ~0.75
    rng = np.random.default_rng(1)
    held = rng.permutation(len(x))[: len(x) // 4]
    fit = np.setdiff1d(np.arange(len(x)), held)
    tuner = NeighborhoodTuner(n_neighbors=10, min_similarity=-1).fit(x[fit])
    before = np.mean(cluster_metrics(x[held], 6, labels=y[held], seeds=3)["v_measure"])
    after = np.mean(cluster_metrics(tuner.transform(x[held]), 6, labels=y[held], seeds=3)["v_measure"])
    assert after > before + 0.05, (before, after)
    assert tuner.transform(x).dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(tuner.transform(x), axis=1), 1, rtol=1e-5)


def test_neighborhood_leaves_vectors_without_close_neighbours_alone():
    x, _ = planted()
    tuner = NeighborhoodTuner(min_similarity=0.9).fit(x)
    stranger = np.random.default_rng(5).normal(size=(3, x.shape[1])).astype(np.float32) * 10
    np.testing.assert_allclose(tuner.transform(stranger), stranger / np.linalg.norm(stranger, axis=1, keepdims=True),
                               rtol=1e-6)
    moved = tuner.transform(x[:5])  # corpus rows have themselves (cosine 1) as a close neighbour at least
    assert not np.allclose(moved, x[:5] / np.linalg.norm(x[:5], axis=1, keepdims=True))
    assert np.allclose(NeighborhoodTuner(weight=0).fit(x).transform(x), x / np.linalg.norm(x, axis=1, keepdims=True),
                       atol=1e-6)


def test_neighborhood_keeps_a_fixed_sample_of_a_large_corpus_and_checks_its_parameters():
    x, _ = planted()
    tuner = NeighborhoodTuner(max_corpus=50, random_state=3).fit(x)
    assert tuner.n_corpus_ == 50 and tuple(tuner.memory_.corpus.shape) == (50, x.shape[1])
    same = NeighborhoodTuner(max_corpus=50, random_state=3).fit(x)
    assert torch.equal(same.memory_.corpus, tuner.memory_.corpus)
    with pytest.raises(ValueError, match="n_neighbors >= 1"):
        NeighborhoodTuner(n_neighbors=0).fit(x)


def test_neighborhood_faiss_search_agrees_with_the_exact_one(monkeypatch):
    pytest.importorskip("faiss")
    import embtune.tuners.neighborhood as neighborhood

    x, _ = planted(n_clusters=5, per=100)
    exact = NeighborhoodTuner(n_neighbors=5).fit(x).transform(x[:50])
    monkeypatch.setattr(neighborhood, "EXACT_NEIGHBORS_BELOW", 10)
    approximate = NeighborhoodTuner(n_neighbors=5).fit(x)
    np.testing.assert_allclose(approximate.transform(x[:50]), exact, atol=1e-4)
    assert approximate._index is not None
    np.testing.assert_allclose(pickle.loads(pickle.dumps(approximate)).transform(x[:50]), exact, atol=1e-4)


def test_make_tuner_builds_the_neighbourhood_tuner_and_refuses_training_options():
    from embtune.tuners import make_tuner

    assert isinstance(make_tuner("neighborhood"), NeighborhoodTuner)
    with pytest.raises(EmbtuneError, match="--epochs does not apply to --method neighborhood"):
        make_tuner("neighborhood", epochs=5)


# -- SpectralTuner -------------------------------------------------------------------------------------------------------


def test_spectral_separates_planted_clusters_on_held_out_vectors_better_than_plain_cosine():
    x, y = planted(n_clusters=6, per=80, dim=64, spread=2.0)  # overlapping: KMeans alone gets V ~0.75
    rng = np.random.default_rng(1)
    held = rng.permutation(len(x))[: len(x) // 4]
    fit = np.setdiff1d(np.arange(len(x)), held)
    tuner = SpectralTuner(n_components=12, n_neighbors=10, min_similarity=-1).fit(x[fit])
    tuned = tuner.transform(x[held])
    assert tuned.shape == (len(held), 64 + 12) and tuned.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(tuned, axis=1), 1, rtol=1e-5)
    before = np.mean(cluster_metrics(x[held], 6, labels=y[held], seeds=3)["v_measure"])
    after = np.mean(cluster_metrics(tuned, 6, labels=y[held], seeds=3)["v_measure"])
    assert after > before + 0.05, (before, after)


def test_spectral_gives_vectors_without_close_neighbours_no_spectral_part():
    x, _ = planted()
    tuner = SpectralTuner(n_components=6, min_similarity=0.9).fit(x)
    stranger = np.random.default_rng(5).normal(size=(3, x.shape[1])).astype(np.float32) * 10
    out = tuner.transform(stranger)
    np.testing.assert_allclose(out[:, : x.shape[1]], stranger / np.linalg.norm(stranger, axis=1, keepdims=True), rtol=1e-6)
    assert np.all(out[:, x.shape[1]:] == 0)
    assert np.any(tuner.transform(x[:5])[:, x.shape[1]:] != 0)  # corpus rows are their own close neighbour
    with pytest.raises(ValueError, match="n_components >= 1"):
        SpectralTuner(n_components=0).fit(x)


def test_spectral_graph_links_each_vector_to_its_neighbours_not_itself():
    x, _ = planted(n_clusters=3, per=20)
    tuner = SpectralTuner(n_components=3, n_neighbors=4).fit(x)
    corpus = tuner.memory_.corpus.numpy().astype(np.float64)
    graph, kth = tuner._graph(corpus)
    assert graph.diagonal().sum() == 0 and (graph != graph.T).nnz == 0
    assert (np.diff(graph.indptr) >= 4).all()  # 4 neighbours each, more where another vector chose it
    others = np.sort(corpus @ corpus.T - 2 * np.eye(len(corpus)), axis=1)[:, ::-1]
    np.testing.assert_allclose(kth, others[:, 3], atol=1e-9)  # the 4th neighbour's cosine, itself not counted
    values = tuner.memory_.eigenvalues.numpy()
    assert np.all(np.diff(values) <= 0) and values[0] == pytest.approx(1, abs=1e-9)  # leading: the trivial one


def test_spectral_auto_gate_follows_the_corpus_similarity_scale_not_a_fixed_cosine():
    x, _ = planted(n_clusters=4, per=50, dim=32, spread=0.3)
    tight = SpectralTuner(n_components=4, n_neighbors=5).fit(x)
    corpus = tight.memory_.corpus.numpy().astype(np.float64)
    fifth = np.sort(corpus @ corpus.T - 2 * np.eye(len(corpus)), axis=1)[:, -5]
    assert tight.min_similarity_ == pytest.approx(np.percentile(fifth, 20), abs=1e-9)
    # the same corpus with more noise: its neighbours are farther, and so is the gate (a fixed 0.6 would not move)
    noisy, _ = planted(n_clusters=4, per=50, dim=32, spread=1.5)
    assert SpectralTuner(n_components=4, n_neighbors=5).fit(noisy).min_similarity_ < tight.min_similarity_ - 0.05
    assert SpectralTuner(n_components=4, min_similarity=0.3).fit(x).min_similarity_ == 0.3
    with pytest.raises(ValueError, match="min_similarity"):
        SpectralTuner(min_similarity="loose").fit(x)
    with pytest.raises(ValueError, match="min_similarity"):
        NeighborhoodTuner(min_similarity="auto").fit(x)  # only the spectral tuner resolves a gate from the corpus
    with pytest.raises(ValueError, match="diffusion_time >= 0"):
        SpectralTuner(diffusion_time=-1).fit(x)


def test_spectral_diffusion_time_weights_each_component_by_its_eigenvalue_power():
    x, _ = planted(n_clusters=4, per=50, dim=32)
    flat = SpectralTuner(n_components=6, diffusion_time=0, weight=1, min_similarity=-1).fit(x)
    timed = SpectralTuner(n_components=6, diffusion_time=3, weight=1, min_similarity=-1).fit(x)
    d, values = x.shape[1], timed.memory_.eigenvalues.numpy()
    a, b = flat.transform(x[:10])[:, d:], timed.transform(x[:10])[:, d:]
    # same directions up to the per-component scale lambda**3, each part renormalised to the same length
    expected = a * values ** 3
    expected *= np.linalg.norm(b, axis=1, keepdims=True) / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(b, expected, atol=1e-5)


def test_spectral_appended_part_is_as_long_as_the_graph_has_group_structure():
    x, _ = planted(n_clusters=4, per=50, dim=32)
    tuner = SpectralTuner(n_components=6, diffusion_time=4, weight=0.5, min_similarity=-1).fit(x)
    powers = tuner.memory_.eigenvalues.numpy().clip(0) ** 4
    assert tuner.strength_ == pytest.approx((powers ** 2).sum() / powers.sum()) and 0 < tuner.strength_ < 1
    out = tuner.transform(x[:10])
    ratio = np.linalg.norm(out[:, 32:], axis=1) / np.linalg.norm(out[:, :32], axis=1)
    np.testing.assert_allclose(ratio, 0.5 * tuner.strength_, rtol=1e-5)  # every neighbour passes the gate: g = 1
    # four planted groups: the first four eigenvalues are near 1, the rest fall off, so a noisier corpus has less
    noisy, _ = planted(n_clusters=4, per=50, dim=32, spread=1.5)
    assert SpectralTuner(n_components=6, min_similarity=-1).fit(noisy).strength_ < tuner.strength_
    assert SpectralTuner(n_components=6, diffusion_time=0).fit(x).strength_ == 1.0


def test_spectral_folder_saved_before_the_adaptive_defaults_transforms_as_it_did(tmp_path):
    import json

    x, _ = planted(n_clusters=3, per=30)
    old = SpectralTuner(n_components=4, weight=1.0, min_similarity=0.6, diffusion_time=0).fit(x)
    old.save(tmp_path / "t")
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    del config["params"]["diffusion_time"], config["fitted"]["min_similarity_"], config["fitted"]["diffusion_time_"]
    del config["fitted"]["strength_"]
    (tmp_path / "t" / "config.json").write_text(json.dumps(config))  # what an older embtune wrote
    np.testing.assert_allclose(load_tuner(tmp_path / "t").transform(x[:7]), old.transform(x[:7]), rtol=1e-6)


@pytest.mark.parametrize("n_clusters, per, components", [(4, 60, 5), (12, 40, 16)])
def test_spectral_sparse_eigensolver_agrees_with_the_dense_one(monkeypatch, n_clusters, per, components):
    """The sparse path runs ARPACK on ((A + I) / 2) ** 4: the same eigenvectors in the same order, and the eigenvalues
    of A itself; 12 groups give many eigenvalues bunched near 1, where that order matters."""
    import embtune.tuners.spectral as spectral

    x, _ = planted(n_clusters=n_clusters, per=per)
    dense = SpectralTuner(n_components=components).fit(x)
    monkeypatch.setattr(spectral, "DENSE_EIGEN_BELOW", 10)
    sparse = SpectralTuner(n_components=components).fit(x)
    np.testing.assert_allclose(sparse.memory_.eigenvalues.numpy(), dense.memory_.eigenvalues.numpy(), atol=1e-8)
    a, b = sparse.transform(x[::7]), dense.transform(x[::7])  # eigenvectors agree up to sign (and rotation where
    np.testing.assert_allclose(a @ a.T, b @ b.T, atol=1e-5)  # eigenvalues repeat), so compare the cosines they give


def test_make_tuner_builds_the_spectral_tuner():
    from embtune.tuners import make_tuner

    assert isinstance(make_tuner("spectral"), SpectralTuner)
    with pytest.raises(EmbtuneError, match="--hidden-dim does not apply to --method spectral"):
        make_tuner("spectral", hidden_dim=8)


@pytest.mark.parametrize("cls", [NeighborhoodTuner, SpectralTuner])
def test_neighbour_tuners_transform_in_blocks_like_all_at_once(cls):
    x, _ = planted(n_clusters=4, per=60)
    # one fit: two fits can differ in the order of eigenvectors whose eigenvalues tie (4 planted clusters), which is
    # no difference between block and whole transforms
    tuner = cls(batch_size=1024).fit(x)
    whole = tuner.transform(x)
    blocks = tuner.set_params(batch_size=7).transform(x)  # 240 rows in 35 blocks, the last one short
    np.testing.assert_allclose(blocks, whole, atol=1e-6)


def test_tuned_encoder_feeds_the_tuner_unit_base_vectors_and_caches_its_output(tmp_path):
    from embtune.encoders import VectorCache
    from embtune.tuners.folder import TunedEncoder

    class LongVectors:  # a base model whose raw vectors are not unit length
        name, modality, fingerprint, dim, calls = "long", "text", "long-v1", 4, 0

        def encode(self, items, *, batch_size=64, normalize=True, on_batch=None):
            LongVectors.calls += 1
            return np.array([[3.0 * (len(t) % 3 + 1), 1.0, 0.0, 2.0] for t in items], dtype=np.float32)

    class Recorder:
        seen = []

        def transform(self, x):
            Recorder.seen.append(np.linalg.norm(x, axis=1))
            return 5 * x[:, :2]

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "config.json").write_text("{}")
    cache = VectorCache(tmp_path / "cache")
    encoder = TunedEncoder(LongVectors(), Recorder(), tmp_path / "t", cache)
    from embtune.encoders.encode import encode_items

    raw, _ = encode_items(encoder, ["a", "bb", "ccc"], cache=cache, normalize=False)
    np.testing.assert_allclose(np.concatenate(Recorder.seen), 1, rtol=1e-6)  # the tuner saw unit vectors
    assert np.linalg.norm(raw, axis=1).max() > 4  # its output is given as it is unless normalize is asked for
    unit, _ = encode_items(encoder, ["a", "bb", "ccc"], cache=cache)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-6)
    assert LongVectors.calls == 1 and encoder.dim == 2  # the second call came from the cache
