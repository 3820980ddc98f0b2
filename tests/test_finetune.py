"""Full-model fine-tuning with a tiny BERT: every objective learns, the guards fire, a killed run resumes exactly,
and the export is a plain sentence-transformers folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import embtune
from embtune.errors import EmbtuneError
from embtune.training.checkpoint import latest_checkpoint
from embtune.training.objectives import TEXT_OBJECTIVES, make_objective
from embtune.training.objectives.base import Objective, embed
from embtune.training.trainer import EvalSet, TrainConfig, TrainingStopped, train
from embtune.tuners.spectral import SpectralTuner


@pytest.fixture(scope="module")
def texts(demo_rows):
    return [r["text"] for r in demo_rows[:400]]


@pytest.fixture(scope="module")
def tiny_mlm_model(tmp_path_factory, demo_rows):
    from tiny_models import build_tiny_sentence_model

    # The plain Hugging Face folder keeps the MLM head (a sentence-transformers save would drop it); embtune loads it
    # with mean pooling, as it would bert-base-uncased.
    folder = build_tiny_sentence_model(tmp_path_factory.mktemp("mlm"), [r["text"] for r in demo_rows], mlm_head=True)
    return folder.parent / "hf"


def load(path):
    from embtune.encoders.sentence_transformer import load_sentence_transformer

    return load_sentence_transformer(Path(path), "cpu")


def items_for(name: str, demo_rows):
    rows = demo_rows[:400]
    if name == "mnrl":
        by_label = {}
        for r in rows:
            by_label.setdefault(r["label"], []).append(r["text"])
        return [(group[i], group[i + 1]) for group in by_label.values() for i in range(len(group) - 1)]
    if name in ("cosine", "cosent"):
        rng = np.random.default_rng(0)
        pairs = []
        for _ in range(300):
            a, b = rng.integers(len(rows), size=2)
            pairs.append((rows[a]["text"], rows[b]["text"], float(rows[a]["label"] == rows[b]["label"])))
        return pairs
    if name == "supcon":
        return [(r["text"], r["label"]) for r in rows]
    return [r["text"] for r in rows]


@pytest.mark.parametrize("name", TEXT_OBJECTIVES)
def test_every_objective_lowers_its_loss(name, tiny_model, tiny_mlm_model, demo_rows, tmp_path):
    model = load(tiny_mlm_model if name == "mlm" else tiny_model)
    objective = make_objective(name, model, **({"teacher": SpectralTuner(n_components=4)} if name == "distill" else {}))
    config = TrainConfig(max_steps=40, batch_size=16, learning_rate=2e-3, warmup_ratio=0.0, seed=0)
    result = train(model, objective, items_for(name, demo_rows), config, checkpoint_dir=tmp_path / "ckpt")
    losses = [loss for _, loss in result.losses]
    assert result.stopped == "finished" and result.steps == 40
    assert np.mean(losses[-8:]) < np.mean(losses[:8]), losses


def test_mlm_refuses_a_model_without_an_mlm_head(tiny_model):
    with pytest.raises(EmbtuneError, match="no trained MLM head"):
        make_objective("mlm", load(tiny_model))


class PullTogether(Objective):
    """Deliberately collapsing: pulls every embedding in a batch towards every other."""

    name = "pull"

    def forward(self, model, batch):
        e = torch.nn.functional.normalize(embed(model, batch), dim=-1)
        return 1 - (e @ e.T).mean()


class PoisonAfter(Objective):
    name = "poison"

    def __init__(self, healthy_steps: int):
        super().__init__()
        self.calls, self.healthy_steps = 0, healthy_steps

    def forward(self, model, batch):
        self.calls += 1
        e = embed(model, batch)
        loss = e.pow(2).mean()
        return loss * float("nan") if self.calls > self.healthy_steps else loss


def test_collapse_guard_stops_and_keeps_the_last_healthy_weights(tiny_model, texts, tmp_path):
    model = load(tiny_model)
    eval_set = EvalSet(texts=texts[:100], k=5)
    config = TrainConfig(max_steps=200, batch_size=16, learning_rate=3e-4, warmup_ratio=0.0, eval_every=2)
    result = train(model, PullTogether(), texts, config, checkpoint_dir=tmp_path / "ckpt", eval_set=eval_set)
    assert result.stopped == "collapse" and result.steps < 200
    assert result.history[-1].get("collapsed")
    assert result.kept_step < result.steps
    from embtune.training.trainer import evaluate_model

    kept = evaluate_model(model, eval_set)
    assert 1 - kept["mean_cosine"] >= 0.25 * (1 - result.initial["mean_cosine"])


def test_nan_guard_stops_with_the_last_good_checkpoint_intact(tiny_model, texts, tmp_path):
    model = load(tiny_model)
    config = TrainConfig(max_steps=50, batch_size=16, checkpoint_every=3, warmup_ratio=0.0)
    with pytest.raises(TrainingStopped, match=r"loss became nan at step 8; the last good checkpoint is .*step-00000006"):
        train(model, PoisonAfter(healthy_steps=7), texts, config, checkpoint_dir=tmp_path / "ckpt")
    assert latest_checkpoint(tmp_path / "ckpt").name == "step-00000006"
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step-*")) == ["step-00000003", "step-00000006"]


def test_early_stopping_restores_the_best_evaluation(tiny_model, texts, tmp_path, monkeypatch):
    from embtune.training import trainer

    scripted = iter([0.10, 0.30, 0.50, 0.40, 0.35, 0.20, 0.90])  # start, then steps 2, 4, 6, 8, 10, ...
    real = trainer.evaluate_model

    def scripted_silhouette(model, eval_set):
        metrics = real(model, eval_set)
        metrics["silhouette"] = next(scripted)
        return metrics

    monkeypatch.setattr(trainer, "evaluate_model", scripted_silhouette)
    model = load(tiny_model)
    config = TrainConfig(max_steps=40, batch_size=16, eval_every=2, early_stopping_metric="silhouette", patience=3)
    result = train(model, make_objective("simcse", model), texts, config, checkpoint_dir=tmp_path / "ckpt",
                   eval_set=EvalSet(texts=texts[:60], k=4))
    assert result.stopped == "early stopping" and result.steps == 10 and result.kept_step == 4
    best = load(tiny_model)
    from embtune.training.checkpoint import load_weights

    load_weights(tmp_path / "ckpt" / "step-00000004", best)
    for (name, a), b in zip(model.state_dict().items(), best.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_time_budget_stops_and_exports(tiny_model, texts, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(texts))
    result = embtune.finetune(corpus, objective="simcse", model=str(tiny_model), output=tmp_path / "out",
                                  max_steps=100000, batch_size=8, max_minutes=0.05, show_progress=False)
    assert result.stopped == "time budget" and result.steps < 100000
    assert (tmp_path / "out" / "modules.json").is_file()


@pytest.mark.slow
def test_export_loads_in_plain_sentence_transformers_with_identical_vectors(tiny_model, texts, tmp_path):
    from sentence_transformers import SentenceTransformer

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(texts))
    out = tmp_path / "out"
    result = embtune.finetune(corpus, objective="augment", model=str(tiny_model), output=out, max_steps=6,
                                  batch_size=16, learning_rate=1e-3, show_progress=False)
    assert result.steps == 6 and set(result.before) >= {"silhouette", "effective_rank", "alignment"}
    plain = SentenceTransformer(str(out), device="cpu").encode(texts[:50], normalize_embeddings=True)
    ours = embtune.encode(texts[:50], model=str(out), cache=False)
    assert (np.sum(plain * ours, axis=1) >= 0.9999).all()
    card = (out / "README.md").read_text()
    assert "Objective: augment" in card and "tiny-st" in card
    summary = json.loads((out / "embtune.json").read_text())
    assert summary["steps"] == 6 and summary["history"][0]["step"] == 0
    assert list((out / "model.safetensors").parent.glob("*.safetensors"))
    assert not list(out.rglob("*.bin")) or all("checkpoints" in str(p) for p in out.rglob("*.bin"))


def test_distill_learns_from_a_tuner_folder_or_a_method_and_refuses_a_teacher_of_another_model(
        tiny_model, tiny_mlm_model, texts, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(texts))
    teacher = tmp_path / "teacher"
    embtune.tune(corpus, method="spectral", model=str(tiny_model), output=teacher, write_report=False,
                 show_progress=False, cache=False)
    runs = {"folder": str(teacher), "method": "neighborhood"}
    for name, given in runs.items():
        out = tmp_path / name
        result = embtune.finetune(corpus, objective="distill", model=str(tiny_model), output=out, max_steps=3,
                                  batch_size=8, objective_params={"teacher": given}, write_report=False,
                                  show_progress=False)
        assert result.steps == 3 and (out / "modules.json").is_file()  # a plain sentence-transformers folder
        expected = "SpectralTuner" if name == "folder" else "NeighborhoodTuner"
        assert expected in json.loads((out / "embtune.json").read_text())["objective_summary"]
    other = tmp_path / "other_teacher"
    embtune.tune(corpus, method="spectral", model=str(tiny_mlm_model), output=other, write_report=False,
                 show_progress=False, cache=False)
    with pytest.raises(EmbtuneError, match="fitted on vectors from .*fine-tune that model"):
        embtune.finetune(corpus, objective="distill", model=str(tiny_model), output=tmp_path / "x", max_steps=2,
                         objective_params={"teacher": str(other)}, show_progress=False)
    for bad, message in (("feedforward", "label-free methods"), (str(tmp_path / "none"), "not a tuner folder")):
        with pytest.raises(EmbtuneError, match=message):
            embtune.finetune(corpus, objective="distill", model=str(tiny_model), output=tmp_path / "x", max_steps=2,
                             objective_params={"teacher": bad}, show_progress=False)


def test_finetune_refuses_to_overwrite_a_run_and_resume_needs_one(tiny_model, texts, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(texts))
    with pytest.raises(EmbtuneError, match="no checkpoints/ folder"):
        embtune.finetune(corpus, model=str(tiny_model), output=tmp_path / "out", resume=True, show_progress=False)
    embtune.finetune(corpus, objective="simcse", model=str(tiny_model), output=tmp_path / "out", max_steps=2,
                         batch_size=8, show_progress=False)
    with pytest.raises(EmbtuneError, match="--overwrite"):
        embtune.finetune(corpus, objective="simcse", model=str(tiny_model), output=tmp_path / "out", max_steps=2,
                             show_progress=False)


def _finetune_command(corpus, model, out, *extra):
    return [sys.executable, "-m", "embtune", "finetune", str(corpus), "-o", str(out), "--model", str(model),
            "--objective", "augment", "--max-steps", "160", "--batch-size", "8", "--lr", "1e-3",
            "--checkpoint-every", "10", "--eval-every", "80", "--seed", "3", "-q", *extra]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tiny_model, texts, tmp_path):
    from safetensors.torch import load_file

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(texts))
    reference = subprocess.run(_finetune_command(corpus, tiny_model, tmp_path / "ref"), capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr

    killed = subprocess.Popen(_finetune_command(corpus, tiny_model, tmp_path / "run"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        folder = latest_checkpoint(tmp_path / "run" / "checkpoints")
        if folder is not None and int(folder.name.split("-")[1]) >= 20:
            break
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    stopped_at = int(latest_checkpoint(tmp_path / "run" / "checkpoints").name.split("-")[1])
    assert 20 <= stopped_at < 160, "the run was not interrupted mid-way"

    resumed = subprocess.run(_finetune_command(corpus, tiny_model, tmp_path / "run", "--resume"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(str(tmp_path / "ref" / "model.safetensors"))
    b = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    history = json.loads((tmp_path / "run" / "embtune.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 80, 160]


def test_sbert_learner_is_embetters_api_on_our_trainer(tiny_model, demo_rows, tmp_path):
    pairs = items_for("cosine", demo_rows)
    x1, x2, y = zip(*pairs)
    learner = embtune.SbertLearner(str(tiny_model), epochs=1, learning_rate=1e-3)
    before = np.corrcoef(learner.predict(x1, x2), y)[0, 1]
    learner.fit(x1, x2, y)
    after = np.corrcoef(learner.predict(x1, x2), y)[0, 1]
    assert after > before
    assert learner.transform(["where is my card"]).shape == (1, 32)
    out = learner.to_disk(tmp_path / "sbert")
    assert (out / "modules.json").is_file() and "cosine" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="same length"):
        learner.fit(["a"], ["b", "c"], [1])
