"""Cluster encoding with Ray Data, on a local Ray instance started by the test."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray.data", reason="the ray extra is not installed (pip install 'embtune[ray]')")

from embtune.encoders import load_encoder  # noqa: E402
from embtune.encoders.ray_encode import encode_with_ray  # noqa: E402
from embtune.errors import EmbtuneError  # noqa: E402


pytestmark = pytest.mark.slow  # a Ray cluster


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 2**20,
             configure_logging=False)
    yield ray
    ray.shutdown()
    from embtune.encoders.ray_encode import _reenable_our_loggers

    _reenable_our_loggers()  # importing ray.data disabled the loggers that existed then


def test_ray_encodes_a_sharded_corpus_like_the_local_encoder(local_ray, tiny_model, demo_rows, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    rows = [{"doc": f"r{i}", "text": r["text"]} for i, r in enumerate(demo_rows[:180])]
    rows[7]["text"] = "  "  # dropped, like the local encode does
    for n in range(3):
        part = rows[n * 60 : (n + 1) * 60]
        pq.write_table(pa.table({"doc": [r["doc"] for r in part], "text": [r["text"] for r in part]}),
                       shards / f"part-{n}.parquet")
    summary = encode_with_ray(shards, tmp_path / "vectors", model=str(tiny_model), id_field="doc", actors=1,
                              batch_size=16)
    assert summary["rows"] == 179 and summary["shards"] >= 1
    table = pq.read_table(tmp_path / "vectors").to_pydict()
    got = {doc: np.asarray(v, dtype=np.float32) for doc, v in zip(table["doc"], table["vector"])}
    kept = [r for r in rows if r["text"].strip()]
    expected = load_encoder(str(tiny_model)).encode([r["text"] for r in kept])
    assert sorted(got) == sorted(r["doc"] for r in kept)
    np.testing.assert_allclose(np.stack([got[r["doc"]] for r in kept]), expected, atol=1e-5)


def test_ray_on_jsonl_keeps_the_text_as_the_key_and_refuses_a_used_folder(local_ray, tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": f"note number {i}"}) for i in range(40)) + "\n")
    summary = encode_with_ray(corpus, tmp_path / "out", model=str(tiny_model), actors=1)
    table = pq.read_table(tmp_path / "out").to_pydict()
    assert summary["rows"] == 40 and sorted(table["text"]) == sorted(f"note number {i}" for i in range(40))
    with pytest.raises(EmbtuneError, match="is not empty"):
        encode_with_ray(corpus, tmp_path / "out", model=str(tiny_model), actors=1)
    with pytest.raises(EmbtuneError, match="folder of parquet shards"):
        encode_with_ray(corpus, tmp_path / "v.npy", model=str(tiny_model), actors=1)
