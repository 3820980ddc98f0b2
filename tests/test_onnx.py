"""ONNX Runtime backend: exports match torch, are cached, and are refused when they stray too far."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'embtune[onnx]')")

from embtune.data.vectors import l2_normalize  # noqa: E402
from embtune.encoders import load_encoder  # noqa: E402
from embtune.errors import EmbtuneError  # noqa: E402


def cosines(a, b):
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


@pytest.mark.parametrize("variant, floor", [("onnx", 0.99999), ("onnx-int8", 0.95)])
def test_onnx_vectors_match_torch_and_the_export_is_cached(tiny_model, demo_rows, variant, floor):
    texts = [r["text"] for r in demo_rows[:80]] + ["a", "x " * 300]  # one token, and one cut at the max length
    torch_vectors = load_encoder(str(tiny_model)).encode(texts)
    encoder = load_encoder(str(tiny_model), backend=variant)
    vectors = encoder.encode(texts, batch_size=16)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    assert cosines(vectors, torch_vectors).min() > floor
    assert encoder.check["texts"] > 100 and encoder.check["mean_cosine"] >= 0.99
    assert encoder.fingerprint != load_encoder(str(tiny_model)).fingerprint  # never shares cached vectors with torch
    files = {p.name for p in encoder.export_dir.iterdir()}
    assert {f"{variant}.check.json", f"{variant}.onnx"} <= files and not any(f.startswith(".build") for f in files)
    stamp = (encoder.export_dir / f"{variant}.onnx").stat().st_mtime_ns
    again = load_encoder(str(tiny_model), backend=variant)
    np.testing.assert_array_equal(again.encode(texts, batch_size=16), vectors)
    assert (encoder.export_dir / f"{variant}.onnx").stat().st_mtime_ns == stamp  # reused, not exported again


def test_an_export_that_strays_from_torch_is_refused_with_the_number(tiny_model):
    # int8 on the tiny model is within float rounding of torch, so only a bar above 1 is sure to be missed
    encoder = load_encoder(str(tiny_model), backend="onnx-int8", min_cosine=1.01)
    with pytest.raises(EmbtuneError, match=r"strays too far .* mean cosine [01]\.\d{4} < 1\.01 on \d+ check texts"):
        encoder.encode(["some text"])


def test_backend_errors_are_clear(tiny_model):
    with pytest.raises(EmbtuneError, match="use one of torch, onnx, onnx-int8"):
        load_encoder(str(tiny_model), backend="tensorrt")
    with pytest.raises(EmbtuneError, match="drop --backend"):
        load_encoder("efficientnet-lite0", backend="onnx")
    with pytest.raises(EmbtuneError, match="encoding only"):
        load_encoder(str(tiny_model), backend="onnx").module()


@pytest.mark.slow
def test_cli_encode_with_onnx_int8_on_minilm(tmp_path, demo_rows):
    """The real model: per-channel int8 keeps MiniLM's vectors (mean cosine >= 0.99, the refusal threshold)."""
    from typer.testing import CliRunner

    from embtune.cli import app

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": r["text"]}) for r in demo_rows[:200]) + "\n")
    result = CliRunner().invoke(app, ["encode", str(corpus), "-o", str(tmp_path / "v.npy"), "--backend", "onnx-int8",
                                      "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "all-MiniLM-L6-v2 (onnx-int8)"
    torch_vectors = load_encoder("all-MiniLM-L6-v2").encode([r["text"] for r in demo_rows[:200]])
    assert cosines(np.load(tmp_path / "v.npy"), torch_vectors).mean() >= 0.99
