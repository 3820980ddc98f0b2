"""Downstream classifiers with a tiny BERT: TextCNN over token embeddings (padding never matters, the tokenizer always
matches its embeddings, save -> load is exact, bad input is refused clearly) and the few-shot classifier."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import embtune
from embtune.cli import app
from embtune.downstream import FewShotClassifier, TextCNNClassifier, load_classifier
from embtune.errors import EmbtuneError
from test_planted_clusters import planted_corpus


@pytest.fixture(scope="module")
def topics():
    texts, labels = planted_corpus(per_topic=40)
    names = np.array(["card", "transfer", "cash", "exchange", "refund", "topup"])[labels]
    order = np.random.default_rng(0).permutation(len(texts))
    return [texts[i] for i in order], names[order]


def fast_cnn(model, **params):
    return TextCNNClassifier(model=str(model), n_epochs=params.pop("n_epochs", 8), n_filters=16, batch_size=16,
                             learning_rate=params.pop("learning_rate", 1e-2),
                             **params)


@pytest.mark.parametrize("features", ["static", "contextual"])
def test_textcnn_learns_topics_and_ignores_padding(features, tiny_model, topics):
    texts, labels = topics
    clf = fast_cnn(tiny_model, features=features, n_epochs=20, dropout=0.1).fit(texts[:180], labels[:180])
    assert clf.score(texts[180:], labels[180:]) > 0.8
    # A text alone, and batched with a text 40 tokens longer: the same probabilities (padding never wins the pool).
    short = [texts[200], "cash"]  # a one-token text is shorter than every kernel but one
    alone = np.concatenate([clf.predict_proba([t]) for t in short])
    padded = clf.predict_proba(short + ["refund merchant " * 20])[:2]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_frozen_trainable_random_and_unfreeze(tiny_model, topics):
    texts, labels = topics[0][:120], topics[1][:120]
    from embtune.downstream.textcnn import _load_backbone

    pretrained = _load_backbone(str(tiny_model))[1].get_input_embeddings().weight.detach()
    frozen = fast_cnn(tiny_model, n_epochs=2).fit(texts, labels)
    assert torch.equal(frozen.network_.tokens.embedding.weight.detach(), pretrained)
    trainable = fast_cnn(tiny_model, n_epochs=2, embeddings="trainable").fit(texts, labels)
    assert not torch.equal(trainable.network_.tokens.embedding.weight.detach(), pretrained)
    random = fast_cnn(tiny_model, n_epochs=1, embeddings="random", n_iter_no_change=None).fit(texts, labels)
    assert random.network_.tokens.embedding.weight.shape == pretrained.shape
    assert not torch.allclose(random.network_.tokens.embedding.weight.detach(), pretrained, atol=1e-2)
    later = fast_cnn(tiny_model, n_epochs=3, unfreeze_after=1, n_iter_no_change=None).fit(texts, labels)
    assert later.n_epochs_ == 3
    assert not torch.equal(later.network_.tokens.embedding.weight.detach(), pretrained)
    with pytest.raises(EmbtuneError, match="unfreeze_after needs embeddings='frozen'"):
        fast_cnn(tiny_model, embeddings="trainable", unfreeze_after=1).fit(texts, labels)


@pytest.mark.parametrize("features", ["static", "contextual"])
def test_textcnn_save_load_gives_identical_predictions(features, tiny_model, topics, tmp_path):
    texts, labels = topics
    clf = fast_cnn(tiny_model, features=features, n_epochs=2, class_weight="balanced").fit(texts[:100], labels[:100])
    clf.save(tmp_path / "clf")
    again = load_classifier(tmp_path / "clf")
    assert isinstance(again, TextCNNClassifier) and list(again.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(again.predict_proba(texts[100:150]), clf.predict_proba(texts[100:150]))
    assert (tmp_path / "clf" / "tokenizer").is_dir() and (tmp_path / "clf" / "model.safetensors").is_file()


def test_a_tokenizer_that_does_not_match_its_embeddings_is_refused(tiny_model, topics, tmp_path):
    texts, labels = topics[0][:60], topics[1][:60]
    # A model folder whose tokenizer grew new tokens that its embedding matrix has no rows for.
    grown = tmp_path / "grown"
    shutil.copytree(tiny_model, grown)
    from transformers import AutoTokenizer

    hf = grown if (grown / "tokenizer_config.json").is_file() else next(p.parent for p in grown.rglob("tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(str(hf))
    tokenizer.add_tokens([f"newtoken{i}" for i in range(50)])
    tokenizer.save_pretrained(str(hf))
    with pytest.raises(EmbtuneError, match="do not belong together"):
        fast_cnn(grown).fit(texts, labels)
    # A saved classifier whose tokenizer folder was swapped for another vocabulary.
    clf = fast_cnn(tiny_model, n_epochs=1).fit(texts, labels)
    clf.save(tmp_path / "clf")
    shutil.rmtree(tmp_path / "clf" / "tokenizer")
    tokenizer.save_pretrained(str(tmp_path / "clf" / "tokenizer"))
    with pytest.raises(EmbtuneError, match="not the tokenizer this classifier was trained with"):
        load_classifier(tmp_path / "clf")


def test_bad_input_gets_clear_errors(tiny_model, topics):
    texts, labels = topics[0][:40], topics[1][:40]
    with pytest.raises(EmbtuneError, match=r"X\[3\] is empty"):
        fast_cnn(tiny_model).fit(texts[:3] + ["   "] + texts[4:], labels)
    with pytest.raises(EmbtuneError, match="only one class"):
        fast_cnn(tiny_model).fit(texts, ["card"] * len(texts))
    with pytest.raises(EmbtuneError, match="40 texts but 39 labels"):
        fast_cnn(tiny_model).fit(texts, labels[:39])
    with pytest.raises(EmbtuneError, match="features='bag'"):
        fast_cnn(tiny_model, features="bag").fit(texts, labels)
    with pytest.raises(EmbtuneError, match="not one string"):
        fast_cnn(tiny_model, n_epochs=1).fit(texts, labels).predict("a single string")


def test_multi_label(tiny_model, topics):
    texts, labels = topics[0][:120], topics[1][:120]
    tags = [[y, "money"] if y in ("cash", "topup") else [y] for y in labels]
    clf = fast_cnn(tiny_model, multi_label=True, n_epochs=10).fit(texts, tags)
    predicted = clf.predict(texts[:10])
    assert predicted.shape == (10, len(clf.classes_)) and set(np.unique(predicted)) <= {0, 1}
    with pytest.raises(EmbtuneError, match="list of labels per text"):
        fast_cnn(tiny_model, multi_label=True).fit(texts, labels)


def test_fewshot_fine_tunes_then_fits_a_head_and_round_trips(tiny_model, topics, tmp_path):
    texts, labels = topics
    few = [i for name in np.unique(labels) for i in np.flatnonzero(labels == name)[:8]]
    clf = FewShotClassifier(model=str(tiny_model), epochs=4, batch_size=16, learning_rate=1e-3).fit(
        [texts[i] for i in few], labels[few])
    assert clf.n_steps_ == 16  # (48 texts + 6 label names) / 16 per batch = 4 batches, x 4 epochs
    rest = [i for i in range(len(texts)) if i not in set(few)]
    floor = FewShotClassifier(model=str(tiny_model), epochs=0).fit([texts[i] for i in few], labels[few])
    assert clf.score([texts[i] for i in rest], labels[rest]) > floor.score([texts[i] for i in rest], labels[rest])
    clf.save(tmp_path / "fs")
    again = load_classifier(tmp_path / "fs")
    np.testing.assert_allclose(again.predict_proba(texts[:20]), clf.predict_proba(texts[:20]), atol=1e-6)
    cheap = FewShotClassifier(model=str(tiny_model), frozen=True).fit([texts[i] for i in few], labels[few])
    cheap.save(tmp_path / "cheap")
    np.testing.assert_allclose(load_classifier(tmp_path / "cheap").predict_proba(texts[:5]), cheap.predict_proba(texts[:5]),
                               atol=1e-6)


def test_fewshot_uses_label_names_that_read_as_words(tiny_model, topics, tmp_path):
    clf = FewShotClassifier()
    clf.classes_ = np.array(["card_arrival", "topUp", "lost-or-stolen"])
    assert clf._label_texts() == ["card arrival", "top Up", "lost or stolen"]
    clf.classes_ = np.array(["1", "18", "B2"])  # codes, not words: "auto" leaves them out
    assert clf._label_texts() == []
    forced = FewShotClassifier(label_names=True)
    forced.classes_ = clf.classes_
    assert forced._label_texts() == ["1", "18", "B2"]
    with pytest.raises(ValueError, match="label_names='yes'"):
        FewShotClassifier(label_names="yes")._label_texts()

    texts, labels = topics
    few = [i for name in np.unique(labels) for i in np.flatnonzero(labels == name)[:3]]
    head = FewShotClassifier(model=str(tiny_model), epochs=0).fit([texts[i] for i in few], labels[few])
    assert head.label_texts_ == [str(c) for c in head.classes_]  # topics' labels are single words
    assert (head.predict(head.label_texts_) == head.classes_).all()  # each name is a training example of its label
    off = FewShotClassifier(model=str(tiny_model), epochs=0, label_names=False).fit([texts[i] for i in few], labels[few])
    assert off.label_texts_ == []
    head.save(tmp_path / "head")
    assert load_classifier(tmp_path / "head").label_texts_ == head.label_texts_


def test_fewshot_precision_follows_the_hardware(monkeypatch):
    import embtune.nn.device as device

    clf = FewShotClassifier()
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    assert clf._mixed_precision("cpu") == "bf16"
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    assert clf._mixed_precision("cpu") == "off"  # no bf16 units: emulated bf16 would be slower, not faster
    assert FewShotClassifier(precision="bf16")._mixed_precision("cpu") == "bf16"
    assert clf._mixed_precision("cuda") == "auto" and FewShotClassifier(precision="fp32")._mixed_precision("cuda") == "off"
    with pytest.raises(ValueError, match="precision='fp8'"):
        FewShotClassifier(precision="fp8")._mixed_precision("cpu")


def test_trainer_runs_bf16_on_the_cpu_when_asked(tiny_model, topics, tmp_path):
    from embtune.encoders.sentence_transformer import load_sentence_transformer
    from embtune.training.objectives import make_objective
    from embtune.training.trainer import TrainConfig, train

    texts, labels = topics
    dtypes = {}
    for mode in ("off", "bf16"):
        model = load_sentence_transformer(tiny_model, "cpu")
        seen = []
        model[0].auto_model.encoder.layer[0].output.dense.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
        before = next(model.parameters()).detach().clone()
        result = train(model, make_objective("supcon", model), [(t, str(y)) for t, y in zip(texts[:64], labels[:64])],
                       TrainConfig(max_steps=3, batch_size=16, learning_rate=1e-3, mixed_precision=mode),
                       checkpoint_dir=tmp_path / mode)
        assert result.steps == 3 and all(np.isfinite(loss) for _, loss in result.losses)
        assert not torch.equal(before, next(model.parameters()).detach())  # weights (kept in fp32) moved
        assert next(model.parameters()).dtype == torch.float32
        dtypes[mode] = set(seen)
    assert dtypes == {"off": {torch.float32}, "bf16": {torch.bfloat16}}


def test_cli_classify_and_predict(tiny_model, topics, tmp_path):
    texts, labels = topics
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t, "intent": str(y)}) + "\n" for t, y in zip(texts[:200], labels[:200])))
    new = tmp_path / "new.txt"
    new.write_text("\n".join(texts[200:210]) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["classify", str(train), "--labels", "intent", "--model", str(tiny_model), "--epochs", "6",
                                 "-o", str(tmp_path / "clf"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "macro-F1" in result.stdout and "embtune predict" in result.stdout
    out = runner.invoke(app, ["predict", str(tmp_path / "clf"), str(new)])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 10 and all(r["label"] in set(labels.tolist()) and 0 < r["probability"] <= 1 for r in rows)
    api_rows = embtune.api.predict(tmp_path / "clf", texts[200:210])
    assert [r["label"] for r in api_rows] == [r["label"] for r in rows]
    bad = runner.invoke(app, ["classify", str(train), "--method", "svm", "--model", str(tiny_model)])
    assert bad.exit_code == 1 and "textcnn, fewshot, logreg" in bad.output
    names = runner.invoke(app, ["classify", str(train), "--no-label-names", "--model", str(tiny_model)])
    assert names.exit_code == 1 and "apply to --method fewshot and logreg, not textcnn" in names.output
    missing = runner.invoke(app, ["predict", str(tmp_path), str(new)])
    assert missing.exit_code == 1 and "not a saved classifier" in missing.output
