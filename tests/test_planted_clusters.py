"""The label-free objectives that sharpen structure (neighbors, pseudo, sccl) do sharpen it: on a toy corpus with
planted topics, a tiny BERT's loss falls and the planted topics become more separable (V-measure up)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import v_measure_score

from embtune.data.vectors import l2_normalize
from embtune.training.objectives import make_objective, objective_class
from embtune.training.objectives.base import encode_frozen
from embtune.training.trainer import TrainConfig, train

pytestmark = pytest.mark.slow  # full fine-tunes of a small model until the clusters sharpen


TOPICS = (
    "card lost stolen blocked pin frozen replace expired",
    "transfer account recipient pending sent arrived bank iban",
    "cash atm withdrawal machine notes swallowed withdraw dispensed",
    "exchange rate currency euro dollar pounds convert foreign",
    "refund merchant returned purchase charged twice dispute item",
    "top up topup balance cheque deposit added funds",
)
FILLER = "i my the a to is was why how can what please help need did it not yet still do".split()


def planted_corpus(per_topic=60, topic_words=4, filler_words=3, seed=0):
    """Texts of a few topic words among shared filler words; the topic is the planted cluster."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in enumerate(TOPICS):
        for _ in range(per_topic):
            tokens = [*rng.choice(words.split(), topic_words), *rng.choice(FILLER, filler_words)]
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(label)
    return texts, np.array(labels)


def v_measure(model, texts, labels) -> float:
    x = l2_normalize(encode_frozen(model, texts))
    k = len(set(labels.tolist()))
    return float(np.mean([v_measure_score(labels, KMeans(k, n_init=1, random_state=s).fit_predict(x)) for s in range(3)]))


@pytest.mark.parametrize("name, params", [
    ("neighbors", {}),
    ("neighbors", {"anchor": 0.5}),
    ("pseudo", {"k": 6, "refresh_every": 20}),
    ("sccl", {"k": 6, "anchor": 0}),
])
def test_objective_sharpens_planted_clusters(name, params, tiny_model, tmp_path):
    from embtune.encoders.sentence_transformer import load_sentence_transformer

    texts, labels = planted_corpus()
    model = load_sentence_transformer(Path(tiny_model), "cpu")
    before = v_measure(model, texts, labels)
    objective = make_objective(name, model, **params)
    config = TrainConfig(max_steps=60, batch_size=32, learning_rate=2e-3, warmup_ratio=0.0, seed=0)
    result = train(model, objective, list(texts), config, checkpoint_dir=tmp_path / "ckpt")
    losses = [loss for _, loss in result.losses]
    after = v_measure(model, texts, labels)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses
    assert after > before + 0.1, (before, after)


def test_anchor_defaults_on_for_instance_discrimination_only(tiny_model):
    from embtune.encoders.sentence_transformer import load_sentence_transformer
    from embtune.training.objectives.anchor import AnchoredObjective

    model = load_sentence_transformer(Path(tiny_model), "cpu")
    for name in ("simcse", "augment", "ct", "sccl"):
        objective = make_objective(name, model)
        assert isinstance(objective, AnchoredObjective) and objective.weight == 1.0, name
        assert not isinstance(make_objective(name, model, anchor=0), AnchoredObjective), name
    for name in ("neighbors", "pseudo", "tsdae"):
        assert not isinstance(make_objective(name, model), AnchoredObjective), name
    assert make_objective("neighbors", model, anchor=0.5).weight == 0.5


def test_anchor_keeps_the_model_near_its_base_embeddings(tiny_model, tmp_path):
    """SimCSE at a high learning rate moves a tiny model's embeddings far; the anchor term holds them near the base."""
    from embtune.encoders.sentence_transformer import load_sentence_transformer

    texts, _ = planted_corpus()
    drift = {}
    for weight in (0.0, 5.0):
        model = load_sentence_transformer(Path(tiny_model), "cpu")
        base = l2_normalize(encode_frozen(model, texts))
        config = TrainConfig(max_steps=30, batch_size=32, learning_rate=2e-3, warmup_ratio=0.0, seed=0)
        train(model, make_objective("simcse", model, anchor=weight), list(texts), config,
              checkpoint_dir=tmp_path / f"ckpt{weight:g}")
        after = l2_normalize(encode_frozen(model, texts))
        drift[weight] = float(1 - np.mean(np.sum(base * after, axis=1)))
    assert drift[5.0] < 0.5 * drift[0.0], drift


def test_auto_describes_the_anchor_each_candidate_trains_with():
    from embtune.auto_select import CANDIDATES

    for name, spec in CANDIDATES.items():
        if spec.kind != "finetune":
            continue
        weight = spec.options.get("anchor", objective_class(spec.options["objective"]).default_anchor)
        assert ("anchored to the base model" in spec.summary) == bool(weight), name
    assert CANDIDATES["finetune:augment"].summary.endswith("anchored to the base model (weight 1)")
    assert "anchored" not in CANDIDATES["finetune:neighbors"].summary
    assert "anchored" in CANDIDATES["finetune:neighbors+anchor"].summary
