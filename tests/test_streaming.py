"""Streaming corpora: folders of shards, fixed-seed samples, and encodes that resume after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embtune.data.corpus import iter_text_chunks, read_corpus, reservoir_sample
from embtune.data.images import is_image_corpus
from embtune.encoders import load_encoder
from embtune.encoders.encode import encode_file
from embtune.errors import EmbtuneError, InputError

from crash import interrupt_on_call


def write_shards(folder, texts, per_shard):
    folder.mkdir()
    for n, start in enumerate(range(0, len(texts), per_shard)):
        part = texts[start : start + per_shard]
        pq.write_table(pa.table({"text": part, "doc_id": [f"d{start + i}" for i in range(len(part))]}),
                       folder / f"part-{n:05d}.parquet")
    (folder / "_SUCCESS").write_text("")  # what Spark leaves beside its shards
    (folder / ".part-00000.parquet.crc").write_text("x")


def test_a_folder_of_shards_reads_as_one_corpus_in_name_order(tmp_path):
    texts = [f"text {i}" for i in range(23)]
    write_shards(tmp_path / "shards", texts, per_shard=5)
    assert not is_image_corpus(tmp_path / "shards")
    assert read_corpus(tmp_path / "shards").texts == texts
    chunks = list(iter_text_chunks(tmp_path / "shards", chunk_size=7, id_field="doc_id"))
    assert [t for c, _ in chunks for t in c] == texts
    assert [i for _, ids in chunks for i in ids] == [f"d{i}" for i in range(23)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no corpus files"):
        read_corpus(tmp_path / "empty")


def test_a_bad_row_in_a_shard_names_the_shard_and_line(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "fine"}\n')
    (folder / "b.jsonl").write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(InputError, match=r"b\.jsonl line 2: no field 'text'"):
        read_corpus(folder)


def test_reservoir_sample_is_uniform_seeded_and_in_stream_order():
    sample, total = reservoir_sample(iter(range(10_000)), 200, seed=3)
    assert total == 10_000 and len(sample) == 200 and sample == sorted(sample)
    assert reservoir_sample(iter(range(10_000)), 200, seed=3)[0] == sample
    assert reservoir_sample(iter(range(10_000)), 200, seed=4)[0] != sample
    assert reservoir_sample(iter(range(50)), 200)[0] == list(range(50))
    hits = np.zeros(40)
    for seed in range(1500):
        hits[reservoir_sample(iter(range(40)), 10, seed)[0]] += 1
    frequency = hits / 1500  # every item should be kept with probability 10/40
    assert np.all(np.abs(frequency - 0.25) < 0.06), frequency


def test_evaluate_scores_a_big_corpus_on_a_fixed_seed_sample_and_says_so(tiny_model, tmp_path, demo_rows):
    import embtune

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": r["text"]}) for r in demo_rows[:300]) + "\n")
    first = embtune.evaluate(corpus, model=str(tiny_model), sample=120, seeds=1, cache=False)
    again = embtune.evaluate(corpus, model=str(tiny_model), sample=120, seeds=1, cache=False)
    assert first.n_texts == 120 and any("sample of 120 of the corpus's 300" in note for note in first.notes)
    assert first.metrics.values == again.metrics.values
    every = embtune.evaluate(corpus, model=str(tiny_model), sample=0, seeds=1, cache=False)
    assert every.n_texts == 300 and not any("sample" in note for note in every.notes)


def _corpus_with_gaps(path, n):
    rows = [{"text": f"message {i} about my card and a transfer of {i % 17} euros", "id": f"m{i}"} for i in range(n)]
    rows[5]["text"] = "   "  # skipped: the ids file must keep the join right
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return rows


def test_an_interrupted_encode_resumes_after_its_last_chunk_without_the_cache(tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    rows = _corpus_with_gaps(corpus, 250)
    encoder = load_encoder(str(tiny_model))
    straight = encode_file(encoder, corpus, tmp_path / "straight.npy", chunk_size=60, id_field="id")
    real_encode = interrupt_on_call(encoder, 3)
    with pytest.raises(KeyboardInterrupt):
        encode_file(encoder, corpus, tmp_path / "v.npy", chunk_size=60, id_field="id")
    assert not (tmp_path / "v.npy").exists() and (tmp_path / "v.npy.partial").is_dir()
    encoder.encode = real_encode
    resumed = encode_file(encoder, corpus, tmp_path / "v.npy", chunk_size=60, id_field="id")
    assert resumed.extra["resumed_rows"] == 120 and resumed.encoded == 249 - 120 and resumed.items == 249
    assert straight.items == 249 and not (tmp_path / "v.npy.partial").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.load(tmp_path / "straight.npy"))
    ids = [json.loads(line) for line in (tmp_path / "v.ids.jsonl").read_text().splitlines()]
    assert ids == [r["id"] for i, r in enumerate(rows) if i != 5]
    numbered = encode_file(encoder, corpus, tmp_path / "n.npy", chunk_size=60)
    assert numbered.items == 249
    assert [json.loads(x) for x in (tmp_path / "n.ids.jsonl").read_text().splitlines()][4:6] == [5, 7]


def test_a_changed_corpus_starts_the_encode_over(tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    _corpus_with_gaps(corpus, 130)
    encoder = load_encoder(str(tiny_model))
    real_encode = encoder.encode
    encoder.encode = lambda items, **kw: (_ for _ in ()).throw(KeyboardInterrupt) if len(items) < 60 else real_encode(items, **kw)
    with pytest.raises(KeyboardInterrupt):
        encode_file(encoder, corpus, tmp_path / "v.npy", chunk_size=60)
    encoder.encode = real_encode
    _corpus_with_gaps(corpus, 140)  # the user fixed or grew the file: nothing written before may be reused
    time.sleep(0.01)
    os.utime(corpus)
    stats = encode_file(encoder, corpus, tmp_path / "v.npy", chunk_size=60)
    assert stats.extra["resumed_rows"] == 0 and stats.encoded == 139


def test_bad_input_mid_corpus_leaves_nothing_to_resume(tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join([json.dumps({"text": f"fine {i}"}) for i in range(100)] + ["{broken"]) + "\n")
    with pytest.raises(EmbtuneError, match="line 101"):
        encode_file(load_encoder(str(tiny_model)), corpus, tmp_path / "v.npy", chunk_size=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]


@pytest.mark.slow
def test_sigkilled_cli_encode_resumes_to_the_same_vectors(tiny_model, tmp_path):
    """A real crash: the CLI process is SIGKILLed mid-encode, run again, and must equal an uninterrupted encode."""
    corpus = tmp_path / "c.jsonl"
    _corpus_with_gaps(corpus, 12000)
    command = [sys.executable, "-m", "embtune", "encode", str(corpus), "--model", str(tiny_model), "--no-cache",
               "--quiet", "--id-field", "id", "--chunk-size", "300", "-o"]
    env = dict(os.environ)
    process = subprocess.Popen([*command, str(tmp_path / "v.npy")], env=env)
    progress = tmp_path / "v.npy.partial" / "progress.json"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["chunks"] >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the encode finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = json.loads(progress.read_text())["rows"]
    assert 0 < done_before < 11999
    result = subprocess.run([*command, str(tmp_path / "v.npy"), "--json"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["resumed_rows"] >= done_before and report["encoded"] == 11999 - report["resumed_rows"]
    straight = subprocess.run([*command, str(tmp_path / "straight.npy")], env=env, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.load(tmp_path / "straight.npy"))
    assert (tmp_path / "v.ids.jsonl").read_text() == (tmp_path / "straight.ids.jsonl").read_text()
