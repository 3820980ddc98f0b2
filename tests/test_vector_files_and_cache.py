"""The streaming .npy writer and the on-disk vector cache."""

from __future__ import annotations

import numpy as np
import pytest

from embtune.data import NpyStreamWriter
from embtune.encoders.cache import VectorCache, directory_fingerprint, text_key


def test_npy_stream_writer_round_trip(tmp_path):
    path = tmp_path / "v.npy"
    blocks = [np.random.default_rng(i).random((n, 7), dtype=np.float32) for i, n in enumerate([3, 0, 5])]
    with NpyStreamWriter(path, dim=7) as out:
        for block in blocks:
            out.write(block)
    loaded = np.load(path, mmap_mode="r")
    assert loaded.shape == (8, 7) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, np.concatenate(blocks))


def test_npy_stream_writer_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "v.npy"
    path.write_bytes(b"previous good file")
    with pytest.raises(RuntimeError):
        with NpyStreamWriter(path, dim=2) as out:
            out.write(np.ones((2, 2)))
            raise RuntimeError("killed mid-way")
    assert path.read_bytes() == b"previous good file"
    assert [p.name for p in tmp_path.iterdir()] == ["v.npy"]


def test_npy_stream_writer_rejects_wrong_width(tmp_path):
    with NpyStreamWriter(tmp_path / "v.npy", dim=3) as out, pytest.raises(ValueError):
        out.write(np.ones((1, 4)))


def test_header_fits_huge_shapes(tmp_path):
    from embtune.data.vectors import npy_header

    assert len(npy_header(10**12, 10**6, np.dtype(np.float32))) == 128


def test_cache_put_get_and_persistence(tmp_path):
    keys = [text_key(t) for t in ["a", "b", "c"]]
    vectors = np.arange(9, dtype=np.float32).reshape(3, 3)
    with VectorCache(tmp_path) as cache:
        cache.put_many("model-1", "m", keys[:2], vectors[:2])
    with VectorCache(tmp_path) as cache:  # a new process would see the same
        found = cache.get_many("model-1", keys)
        assert set(found) == set(keys[:2])
        np.testing.assert_array_equal(found[keys[1]], vectors[1])
        assert cache.get_many("model-2", keys) == {}
        info = cache.info()
        assert info.vectors == 2 and info.models[0][1] == "m"


def test_cache_clear_by_model_name(tmp_path):
    with VectorCache(tmp_path) as cache:
        cache.put_many("ns1", "first", [b"k1"], np.ones((1, 2)))
        cache.put_many("ns2", "second", [b"k2"], np.ones((1, 2)))
        assert cache.clear(["first"]) == 1
        assert cache.info().vectors == 1
        assert cache.clear() == 1
        assert cache.info().vectors == 0


def test_cache_evicts_least_recently_used_beyond_limit(tmp_path):
    dim = 256  # 1 KiB per vector
    with VectorCache(tmp_path, max_bytes=400 * 1024) as cache:
        old = [text_key(f"old{i}") for i in range(200)]
        cache.put_many("ns", "m", old, np.ones((200, dim)))
        cache.get_many("ns", old[:10])  # recently used: should survive
        for round_ in range(5):
            new = [text_key(f"new{round_}-{i}") for i in range(200)]
            cache.put_many("ns", "m", new, np.ones((200, dim)))
        assert cache._used_bytes() <= 400 * 1024
        assert cache.info().vectors < 1200
        assert len(cache.get_many("ns", new)) == 200  # the newest are kept


def test_text_key_is_content_exact():
    assert text_key("Card") != text_key("card") != text_key("card ")
    assert len(text_key("x")) == 16


def test_directory_fingerprint_follows_content_not_location(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "config.json").write_text("{}")
        (d / "model.safetensors").write_bytes(b"weights")
        (d / "README.md").write_text(f"card of {d.name}")  # the model card does not change vectors
    with VectorCache(tmp_path / "cache") as cache:
        assert directory_fingerprint(a, cache) == directory_fingerprint(b, cache)
        (b / "model.safetensors").write_bytes(b"weightz")
        assert directory_fingerprint(a, cache) != directory_fingerprint(b, cache)
        assert directory_fingerprint(a, cache, extra="x") != directory_fingerprint(a, cache)
