"""The command line as a user meets it: exit codes, one-line errors, tables, JSON on stdout only."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from embtune.cli import app

runner = CliRunner()


def embtune(*args: str, env=None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "embtune", *args], capture_output=True, text=True, timeout=300, env=env
    )


BAD_INPUTS = {
    "empty file": (b"", "is empty (0 bytes)"),
    "all-empty rows": (b'{"text": ""}\n{"text": "  "}\n', "all 2 row(s) have an empty 'text'"),
    "missing text field": (b'{"sentence": "hello"}\n', "line 1: no field 'text'"),
    "malformed JSON line": (b'{"text": "ok"}\n{"text": oops}\n', "line 2: malformed JSON"),
    "non-UTF-8 file": ('{"text": "caf\xe9"}\n'.encode("latin-1"), "line 1: not valid UTF-8"),
}


@pytest.mark.parametrize("command", ["encode", "evaluate"])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.slow
def test_bad_corpus_gives_one_line_error_and_exit_1(tmp_path, case, command):
    content, expected = BAD_INPUTS[case]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(content)
    args = [command, str(corpus)] + (["-o", str(tmp_path / "v.npy")] if command == "encode" else [])
    result = embtune(*args)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert str(corpus) in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "v.npy").exists()


@pytest.mark.slow
def test_nonexistent_path(tmp_path):
    result = embtune("evaluate", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.jsonl'}: no such file"


@pytest.mark.slow
def test_unknown_model_name(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello\n")
    result = embtune("encode", str(corpus), "-o", str(tmp_path / "v.npy"), "--model", "no-such-model-xyz")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model no-such-model-xyz" in lines[0] and "never downloads" in lines[0]


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{broken\n")
    result = embtune("evaluate", str(corpus), "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "malformed JSON" in result.stderr


def test_usage_error_exits_2(tmp_path):
    result = embtune("evaluate", str(tmp_path / "x.jsonl"), "--seeds", "zero")
    assert result.returncode == 2


def test_help_has_examples():
    for command in ("encode", "evaluate"):
        result = embtune(command, "--help")
        assert result.returncode == 0 and "Examples" in result.stdout


def test_encode_then_evaluate_vectors_with_tiny_model(tiny_model, tmp_path, demo_rows):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in demo_rows[:300]))
    out = tmp_path / "v.npy"
    result = runner.invoke(app, ["encode", str(corpus), "-o", str(out), "--model", str(tiny_model), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 300 and summary["dim"] == 32 and summary["encoded"] == 300
    assert np.load(out).shape == (300, 32)

    again = runner.invoke(app, ["encode", str(corpus), "-o", str(out), "--model", str(tiny_model), "--json"])
    assert json.loads(again.stdout)["from_cache"] == 300

    result = runner.invoke(app, ["evaluate", str(corpus), "--vectors", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_labels"] == len({r["label"] for r in demo_rows[:300]})
    assert {"v_measure", "silhouette", "knn_accuracy", "logreg_accuracy"} <= set(payload["metrics"])


def test_evaluate_table_with_test_file_and_pairs(tiny_model, tmp_path, demo_rows):
    train, test, pairs = tmp_path / "train.jsonl", tmp_path / "test.jsonl", tmp_path / "pairs.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in demo_rows[:400]))
    test.write_text("\n".join(json.dumps(r) for r in demo_rows[400:600]))
    pairs.write_text(
        "\n".join(json.dumps({"text1": a["text"], "text2": b["text"], "score": float(i % 6)})
                  for i, (a, b) in enumerate(zip(demo_rows[:40], demo_rows[40:80])))
    )
    args = ["evaluate", str(train), "--model", str(tiny_model), "--test", str(test), "--pairs", str(pairs)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("v_measure", "knn_accuracy", "sts_spearman", "alignment", "effective_rank"):
        assert name in result.stdout
    assert "held-out set" in result.stdout


def test_evaluate_vectors_count_mismatch_is_a_user_error(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a\nb\nc\n")
    np.save(tmp_path / "v.npy", np.ones((2, 4), dtype=np.float32))
    result = runner.invoke(app, ["evaluate", str(corpus), "--vectors", str(tmp_path / "v.npy")])
    assert result.exit_code == 1 and "2 vectors for 3 texts" in result.stderr


def test_cache_info_and_clear(tiny_model, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("one\ntwo\n")
    assert runner.invoke(app, ["encode", str(corpus), "-o", str(tmp_path / "v.npy"), "-m", str(tiny_model)]).exit_code == 0
    info = json.loads(runner.invoke(app, ["cache", "info", "--json"]).stdout)
    assert info["vectors"] == 2 and info["models"][0]["name"] == "tiny-st"
    result = runner.invoke(app, ["cache", "clear", "--model", "tiny-st"])
    assert result.exit_code == 0 and "removed 2" in result.stderr
    assert json.loads(runner.invoke(app, ["cache", "info", "--json"]).stdout)["vectors"] == 0
    from embtune.explore.maps import project

    project(np.eye(5, 4, dtype=np.float32))  # explore's cached map: counted by info, removed by a full clear
    assert json.loads(runner.invoke(app, ["cache", "info", "--json"]).stdout)["side_files"]["files"] == 1
    result = runner.invoke(app, ["cache", "clear"])
    assert result.exit_code == 0 and "removed 1 other cached files" in result.stderr
    assert json.loads(runner.invoke(app, ["cache", "info", "--json"]).stdout)["side_files"] == {"files": 0, "bytes": 0}


def test_tune_saves_a_tuner_that_encode_applies(tiny_model, tmp_path, demo_rows):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in demo_rows[:400]))
    args = ["tune", str(corpus), "--method", "feedforward", "-m", str(tiny_model), "--hidden-dim", "16", "-o",
            str(tmp_path / "tuner"), "--json", "--seeds", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_fit"] == 320 and payload["n_heldout"] == 80 and payload["labels_used_for_fit"]
    assert set(payload["delta"]) >= {"v_measure", "logreg_accuracy", "silhouette"}
    assert (tmp_path / "tuner" / "tuning.json").is_file()

    # The tuner remembers its base model (here a folder named by absolute path), so --model is not needed.
    result = runner.invoke(app, ["encode", str(corpus), "--tuner", str(tmp_path / "tuner"), "-o", str(tmp_path / "t.npy")])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "t.npy").shape == (400, 16)
    assert f"+ the tuner in {tmp_path / 'tuner'}" in result.stderr  # the summary says the vectors are tuned
    # --model takes the tuner folder too: the same vectors, and evaluate can score the tuned space
    result = runner.invoke(app, ["encode", str(corpus), "-m", str(tmp_path / "tuner"), "-o", str(tmp_path / "m.npy")])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), np.load(tmp_path / "t.npy"))
    tuned = runner.invoke(app, ["evaluate", str(corpus), "-m", str(tmp_path / "tuner"), "--json", "--seeds", "2"])
    plain = runner.invoke(app, ["evaluate", str(corpus), "-m", str(tiny_model), "--json", "--seeds", "2"])
    assert tuned.exit_code == 0 and plain.exit_code == 0, tuned.output + plain.output
    assert "FeedForwardTuner (tuner)" in json.loads(tuned.stdout)["model"]
    assert json.loads(tuned.stdout)["metrics"] != json.loads(plain.stdout)["metrics"]


def test_tune_label_free_method_ignores_labels_for_fitting(tiny_model, tmp_path, demo_rows):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in demo_rows[:300]))
    result = runner.invoke(app, ["tune", str(corpus), "--method", "autoencoder", "-m", str(tiny_model), "--epochs", "3",
                                 "--json", "--seeds", "1"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert not payload["labels_used_for_fit"] and "v_measure" in payload["after"]["metrics"]


def test_tune_supervised_method_without_labels_is_a_user_error(tiny_model, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"text {i}" for i in range(40)))
    result = runner.invoke(app, ["tune", str(corpus), "--method", "feedforward", "-m", str(tiny_model)])
    assert result.exit_code == 1 and "learns from labels" in result.stderr
    result = runner.invoke(app, ["tune", str(corpus), "--method", "nope", "-m", str(tiny_model)])
    assert result.exit_code == 1 and "use one of feedforward" in result.stderr
