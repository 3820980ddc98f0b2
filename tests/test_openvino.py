"""OpenVINO backend: bf16/fp32 and int8 calibrated on the corpus; exports match torch, are cached per calibration,
are refused when they stray, never reach the network, and keep `--json` output clean."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'embtune[openvino]')")
pytest.importorskip("nncf", reason="the openvino extra is not installed (pip install 'embtune[openvino]')")

from embtune.data.vectors import l2_normalize  # noqa: E402
from embtune.encoders import load_encoder  # noqa: E402
from embtune.encoders.openvino import int8_note, spread_sample  # noqa: E402
from embtune.errors import EmbtuneError  # noqa: E402


def cosines(a, b):
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


@pytest.mark.parametrize("variant, floor", [("openvino", 0.999), ("openvino-int8", 0.95)])
def test_openvino_vectors_match_torch_and_the_export_is_cached(tiny_model, demo_rows, variant, floor):
    texts = [r["text"] for r in demo_rows[:300]] + ["a", "x " * 300]  # one token, and one cut at the max length
    torch_vectors = load_encoder(str(tiny_model)).encode(texts)
    encoder = load_encoder(str(tiny_model), backend=variant, calibration=texts)
    vectors = encoder.encode(texts, batch_size=16)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    assert cosines(vectors, torch_vectors).min() > floor
    assert encoder.check["texts"] >= 100 and encoder.check["mean_cosine"] >= 0.99
    assert encoder.fingerprint != load_encoder(str(tiny_model)).fingerprint  # never shares cached vectors with torch
    stem = encoder.file_stem
    files = {p.name for p in encoder.export_dir.iterdir()}
    assert {f"{stem}.xml", f"{stem}.bin", f"{encoder.check_stem}.check.json"} <= files
    assert not any(f.startswith(".build") for f in files)
    stamp = (encoder.export_dir / f"{stem}.xml").stat().st_mtime_ns
    again = load_encoder(str(tiny_model), backend=variant, calibration=texts)
    np.testing.assert_array_equal(again.encode(texts, batch_size=16), vectors)
    assert (encoder.export_dir / f"{stem}.xml").stat().st_mtime_ns == stamp  # reused, not exported again


def test_int8_is_calibrated_on_the_corpus_and_each_calibration_has_its_own_fingerprint(tiny_model, demo_rows):
    texts = [r["text"] for r in demo_rows]
    first, second = texts[:600], texts[1000:1600]
    a = load_encoder(str(tiny_model), backend="openvino-int8", calibration=first)
    b = load_encoder(str(tiny_model), backend="openvino-int8", calibration=second)
    same = load_encoder(str(tiny_model), backend="openvino-int8", calibration=list(first))
    assert a.calibration == spread_sample(first) and len(a.calibration) == 600
    assert a.fingerprint == same.fingerprint and a.fingerprint != b.fingerprint  # cached vectors never mix
    # the check texts are texts of the corpus the calibration did not see
    calibration, check = a._calibration_and_check()
    assert set(check) <= set(first) and not set(check) & set(calibration) and len(calibration) == 300
    a.encode(first[:5])
    b.encode(first[:5])
    assert a.export_dir == b.export_dir and (a.export_dir / f"{a.file_stem}.xml").exists()
    assert (b.export_dir / f"{b.file_stem}.xml").exists() and a.file_stem != b.file_stem
    # a corpus too small to calibrate on falls back to the demo corpus, and says so in its fingerprint
    tiny = load_encoder(str(tiny_model), backend="openvino-int8", calibration=["one text", "two texts"])
    assert tiny.calibration is None and tiny.fingerprint == load_encoder(str(tiny_model), backend="openvino-int8").fingerprint


def test_spread_sample_is_deterministic_distinct_and_spread():
    texts = [f"text {i}" for i in range(10_000)] + ["", "   ", "text 5"]
    sample = spread_sample(texts, 100)
    assert sample == spread_sample(texts, 100) and len(sample) == len(set(sample)) == 100
    assert sample[0] == "text 0" and sample[-1] == "text 9999"
    assert spread_sample(["a", "a", "b"], 10) == ["a", "b"]


def test_int8_note_names_the_missing_vnni(tiny_model, monkeypatch, caplog):
    assert int8_note({"avx2", "avx512f"}) is not None and "VNNI" in int8_note({"avx2"})
    assert int8_note({"avx2", "avx_vnni"}) is None and int8_note({"avx512_vnni"}) is None
    assert int8_note(set()) is None  # unknown CPU: no claim
    import embtune.encoders.openvino as openvino

    monkeypatch.setattr(openvino, "cpu_flags", lambda: {"avx2", "fma"})  # as an AVX2-only CPU reports itself
    with caplog.at_level("WARNING", logger="embtune.encoders.openvino"):
        load_encoder(str(tiny_model), backend="openvino-int8").encode(["a text"])
    said = [r for r in caplog.records if "no VNNI" in r.getMessage() and "--backend openvino" in r.getMessage()]
    assert len(said) == 1  # once, though the check and the encode each open a session


def test_an_openvino_export_that_strays_from_torch_is_refused_with_the_number(tiny_model):
    encoder = load_encoder(str(tiny_model), backend="openvino", min_cosine=1.01)
    with pytest.raises(EmbtuneError, match=r"strays too far .* mean cosine [01]\.\d{4} < 1\.01 on \d+ check texts"):
        encoder.encode(["some text"])


def test_openvino_backend_errors_are_clear(tiny_model):
    with pytest.raises(EmbtuneError, match="use one of torch, onnx, onnx-int8, openvino, openvino-int8"):
        load_encoder(str(tiny_model), backend="tensorrt")
    with pytest.raises(EmbtuneError, match="drop --backend"):
        load_encoder("efficientnet-lite0", backend="openvino")
    with pytest.raises(EmbtuneError, match="encoding only"):
        load_encoder(str(tiny_model), backend="openvino-int8").module()


def test_building_an_openvino_int8_export_makes_no_network_connection(tiny_model, tmp_path):
    """OpenVINO's converter and NNCF would send usage statistics (no consent file counts as consent for them):
    embtune blocks that. Every socket connect in the process fails loudly and is recorded."""
    script = textwrap.dedent(f"""
        import socket, sys
        attempts = []
        def refuse(self, address, *a, **k):
            attempts.append(address)
            raise OSError("network refused by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        from embtune.encoders import load_encoder
        texts = [f"calibration text number {{i}} about cards and transfers" for i in range(120)]
        encoder = load_encoder({str(tiny_model)!r}, backend="openvino-int8", calibration=texts)
        encoder.encode(texts[:4])
        import threading
        for t in threading.enumerate():
            if t is not threading.main_thread():
                t.join(timeout=5)
        print("attempts", attempts, "telemetry", sys.modules.get("openvino_telemetry", "absent"))
    """)
    env = {"EMBTUNE_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "attempts [] telemetry None" in done.stdout, done.stdout + done.stderr[-2000:]
    assert not (tmp_path / "intel").exists()  # no consent or client-id file written into the user's home


def test_int8_calibration_leaves_the_callers_logging_alone(tiny_model):
    """NNCF's notes are quieted on its logger only: a handler a user put there (to see NNCF's own logs) keeps its
    level, and the logger's level comes back (nncf.set_log_level would set every such handler to ERROR)."""
    import logging

    handler = logging.StreamHandler()
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.addHandler(handler)
    try:
        load_encoder(str(tiny_model), backend="openvino-int8", calibration=["text"] * 5).encode(["a text"])
        assert handler.level == logging.NOTSET and nncf_logger.level == level
    finally:
        nncf_logger.removeHandler(handler)


def test_cli_encode_with_openvino_int8_keeps_json_clean_and_names_the_backend(tiny_model, tmp_path, demo_rows):
    from typer.testing import CliRunner

    from embtune.cli import app

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": r["text"]}) for r in demo_rows[:400]) + "\n")
    result = CliRunner().invoke(app, ["encode", str(corpus), "-m", str(tiny_model), "-o", str(tmp_path / "v.npy"),
                                      "--backend", "openvino-int8", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # NNCF's progress bars would land on stdout; they must not
    assert summary["model"].endswith("(openvino-int8)") and summary["rows"] == 400
    torch_vectors = load_encoder(str(tiny_model)).encode([r["text"] for r in demo_rows[:400]])
    assert cosines(np.load(tmp_path / "v.npy"), torch_vectors).mean() >= 0.99


@pytest.mark.slow
def test_minilm_openvino_int8_keeps_the_vectors(tmp_path, demo_rows):
    """The real model: static int8 calibrated on the corpus keeps MiniLM's vectors (mean cosine >= 0.99)."""
    texts = [r["text"] for r in demo_rows[:600]]
    encoder = load_encoder("all-MiniLM-L6-v2", backend="openvino-int8", calibration=texts)
    torch_vectors = load_encoder("all-MiniLM-L6-v2").encode(texts)
    assert cosines(encoder.encode(texts), torch_vectors).mean() >= 0.99
    assert encoder.check["mean_cosine"] >= 0.99
