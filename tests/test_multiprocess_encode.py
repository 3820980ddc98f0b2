"""Multi-process encoding: N worker copies of the model give the vectors, order and ids of one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from embtune.api import encode_corpus
from embtune.encoders import load_encoder
from embtune.encoders.multiprocess import ProcessPoolEncoder
from embtune.errors import EmbtuneError


pytestmark = pytest.mark.slow  # worker processes


def test_two_processes_give_the_vectors_of_one_in_order(tiny_model, demo_rows):
    texts = [r["text"] for r in demo_rows[:150]]
    texts[10] = texts[3]  # a duplicate
    single = load_encoder(str(tiny_model), device="cpu")
    expected = single.encode(texts, batch_size=16)
    seen = []
    with ProcessPoolEncoder(load_encoder(str(tiny_model), device="cpu"), processes=2, device="cpu") as pool:
        assert pool.fingerprint == single.fingerprint  # the vector cache is shared with one-process runs
        got = pool.encode(texts, batch_size=16, on_batch=seen.append)
        assert pool.dim == expected.shape[1]
        assert pool.encode([], batch_size=16).shape == (0, expected.shape[1])
        workers = list(pool._pool._processes.values())
        assert len(workers) == 2 and all(w.is_alive() for w in workers)
        # A worker killed (say by the out-of-memory killer) is a clear error, not a hang.
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].join(timeout=30)
        with pytest.raises(EmbtuneError, match="worker process died"):
            pool.encode(texts, batch_size=16)
    assert got.shape == expected.shape
    # Each worker runs with its share of the cores, and a different thread count may reorder float sums.
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sum(seen) == len(texts) and len(seen) == 10  # progress per batch of 16


def test_pool_refuses_what_it_cannot_do(tiny_model):
    encoder = load_encoder(str(tiny_model), device="cpu")
    with pytest.raises(EmbtuneError, match="at least 2 processes"):
        ProcessPoolEncoder(encoder, processes=1)
    with pytest.raises(EmbtuneError, match="finetune --nproc"):
        ProcessPoolEncoder(encoder, processes=2).module()


def test_cli_encode_with_nproc_writes_the_single_process_file(tiny_model, demo_rows, tmp_path):
    corpus = tmp_path / "c.jsonl"
    rows = [{"doc": f"d{i}", "text": r["text"]} for i, r in enumerate(demo_rows[:300])]
    rows[5]["text"] = ""
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    one = encode_corpus(corpus, model=str(tiny_model), output=tmp_path / "one.npy", id_field="doc", device="cpu",
                        cache=False, show_progress=False)
    env = {**os.environ, "EMBTUNE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "embtune", "encode", str(corpus), "-m", str(tiny_model), "--id-field", "doc",
         "--chunk-size", "128", "--nproc", "2", "--device", "cpu", "-o", str(tmp_path / "two.npy"), "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == 299 and summary["encoded"] == 299
    np.testing.assert_allclose(np.load(tmp_path / "two.npy"), np.asarray(one.vectors), atol=1e-5)
    assert (tmp_path / "two.ids.jsonl").read_text() == (tmp_path / "one.ids.jsonl").read_text()
