"""Model resolution, the sentence-transformers backend, and encoding through the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

import embtune
from embtune.encoders import VectorCache, load_encoder, resolve_model
from embtune.encoders.encode import encode_file, encode_items
from embtune.errors import EmbtuneError, ModelNotFoundError

from crash import interrupt_on_call


def test_shipped_model_resolves_by_name_offline():
    resolved = resolve_model("all-MiniLM-L6-v2")
    assert resolved.backend == "sentence-transformers"
    assert (resolved.path / "model.safetensors").is_file()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2").path == resolved.path


def test_unknown_model_name_fails_at_once_with_how_to():
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("bert-large-uncased-whole-word-masking-nope")
    message = str(info.value)
    assert "never downloads" in message and "SentenceTransformer(" in message and "--model ./my-model" in message


def test_nonexistent_model_path():
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        resolve_model("./no/such/model")


def test_model_path_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="holds no modules.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        resolve_model(str(tmp_path / "weights.bin"))


def test_url_is_refused_without_network():
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        resolve_model("https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2")


def test_cuda_device_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(EmbtuneError, match="--device cuda"):
        load_encoder("all-MiniLM-L6-v2", device="cuda")


def test_tiny_model_encodes_normalised_float32(tiny_model):
    encoder = load_encoder(str(tiny_model))
    vectors = encoder.encode(["where is my card", "top up failed", "where is my card"])
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)


def test_second_encode_comes_from_cache_without_loading_the_model(tiny_model, demo_rows):
    texts = [r["text"] for r in demo_rows[:300]] + ["duplicate", "duplicate"]
    cache = VectorCache()
    first, stats = encode_items(load_encoder(str(tiny_model), cache=cache), texts, cache=cache)
    assert stats.encoded == 301 and stats.from_cache == 0
    fresh = load_encoder(str(tiny_model), cache=cache)
    second, stats = encode_items(fresh, texts, cache=cache)
    assert stats.encoded == 0 and stats.from_cache == 302
    assert not fresh.loaded  # no model work at all
    np.testing.assert_array_equal(first, second)


def test_cache_distinguishes_models(tiny_model, tmp_path, demo_rows):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    cache = VectorCache()
    assert load_encoder(str(other), cache=cache).fingerprint == load_encoder(str(tiny_model), cache=cache).fingerprint
    weights = other / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert load_encoder(str(other), cache=cache).fingerprint != load_encoder(str(tiny_model), cache=cache).fingerprint


def test_streamed_file_encode_equals_in_memory(tiny_model, tmp_path, demo_rows):
    corpus = tmp_path / "c.jsonl"
    rows = demo_rows[:50] + [{"text": "  ", "label": "x"}] + demo_rows[50:120]
    corpus.write_text("\n".join(json.dumps(r) for r in rows))
    encoder = load_encoder(str(tiny_model))
    stats = encode_file(encoder, corpus, tmp_path / "v.npy", chunk_size=16)
    streamed = np.load(tmp_path / "v.npy")
    assert stats.items == 120 and stats.skipped_empty == 1
    expected = encoder.encode([r["text"] for r in demo_rows[:120]])
    np.testing.assert_allclose(streamed, expected, atol=1e-5)


def test_interrupted_file_encode_keeps_committed_batches_in_cache(tiny_model, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"text number {i} about a card" for i in range(2600)) + "\n")
    encoder = load_encoder(str(tiny_model))
    cache = VectorCache()
    real_encode = interrupt_on_call(encoder, 2)
    with pytest.raises(KeyboardInterrupt):
        encode_file(encoder, corpus, tmp_path / "v.npy", cache=cache, chunk_size=2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]  # no output, no temp file
    encoder.encode = real_encode
    stats = encode_file(encoder, corpus, tmp_path / "v.npy", cache=cache, chunk_size=2000)
    assert stats.from_cache == 1024 and stats.encoded == 2600 - 1024  # the batch committed before the kill is kept
    np.testing.assert_allclose(np.load(tmp_path / "v.npy")[:5], real_encode([f"text number {i} about a card" for i in range(5)]), atol=1e-5)


@pytest.mark.slow
def test_minilm_vectors_equal_plain_sentence_transformers(demo_rows):
    from sentence_transformers import SentenceTransformer

    texts = [r["text"] for r in demo_rows[::4]]
    ours = embtune.encode(texts, cache=False)
    reference = SentenceTransformer(str(resolve_model("all-MiniLM-L6-v2").path), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    cosine = np.sum(ours * reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999
