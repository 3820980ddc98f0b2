"""Property-based tests (Hypothesis) for what users hand embtune and what embtune writes.

The property everywhere: a bad input is the user's problem, so it surfaces as an ``EmbtuneError`` (the CLI's exit 1,
one line naming the file); anything else escaping is a bug (exit 3). Reading never changes a file, and an interrupted
or concurrent write never leaves an output that a later run cannot finish. Every test draws its own temp folders
(Hypothesis runs many examples per test function, so pytest's per-test ``tmp_path`` would be shared between them).

Examples per target are set in ``EXAMPLES``; `pytest tests/test_fuzz.py --hypothesis-show-statistics` prints them with
their times. The default profile (what `make test` and CI run) draws the same examples every time, so a landing never
depends on a lucky draw; a longer profile explores fresh random ones: ``EMBTUNE_FUZZ_SCALE=8 pytest tests/test_fuzz.py``
(~11,000 cases, 2 minutes here; that is how a multi-line error message for a CSV header holding a line break was found).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embtune.data.corpus import read_corpus
from embtune.data.pairs import read_pairs
from embtune.data.resumable import ResumableVectorWriter, ids_path_for
from embtune.data.vectors import NpyStreamWriter
from embtune.errors import EmbtuneError

pytestmark = pytest.mark.slow  # thousands of generated files


SCALE = float(os.environ.get("EMBTUNE_FUZZ_SCALE", "1"))
EXAMPLES = {  # per target, in one `make test` run (x EMBTUNE_FUZZ_SCALE)
    "random_bytes": 300, "json_rows": 200, "csv_rows": 150, "shard_folders": 100, "pair_files": 200,
    "tuner_config": 120, "tuner_weights": 120, "resumable_writer": 80, "concurrent_writers": 20, "npy_writer": 60,
    "cli_encode": 15,
}


def fuzz(target: str):
    return settings(max_examples=max(1, int(EXAMPLES[target] * SCALE)), deadline=None, database=None,
                    derandomize=SCALE == 1, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_or_refuse(read, folder: Path):
    """Run a reader; it may succeed or raise EmbtuneError (exit 1), and must not change any file."""
    before = snapshot(folder)
    try:
        result = read()
    except EmbtuneError as e:
        assert str(e).strip() and "\n" not in str(e).strip(), f"error is not one line: {e!r}"
        result = None
    assert snapshot(folder) == before, "reading changed a file"
    return result


SUFFIXES = [".txt", ".csv", ".tsv", ".jsonl", ".parquet"]

# Unicode text with everything in it: control characters, combining marks, and lone surrogates.
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True), any_text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(any_text, inner, max_size=3)), max_leaves=8)
field_name = st.sampled_from(["text", "label", "id", "score", "text1", "text2", "negative", "other"])


# -- readers --------------------------------------------------------------------------------------------------------


@fuzz("random_bytes")
@given(content=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES), labels=st.booleans())
def test_random_bytes_are_read_or_refused(content, suffix, labels):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"corpus{suffix}"
        path.write_bytes(content)
        read_or_refuse(lambda: read_corpus(path, label_field="label" if labels else None), Path(tmp))


@fuzz("json_rows")
@given(rows=st.lists(st.one_of(st.dictionaries(field_name, json_value, max_size=4), json_value), min_size=1, max_size=8),
       ascii_only=st.booleans())
def test_random_json_rows_are_read_or_refused(rows, ascii_only):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        # ensure_ascii writes lone surrogates as \ud800 escapes; otherwise they cannot be UTF-8 and become bad bytes
        text = "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in rows)
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        corpus = read_or_refuse(lambda: read_corpus(path, label_field="label"), Path(tmp))
        if corpus is not None:
            assert all(isinstance(t, str) and t.strip() for t in corpus.texts)
            for t in corpus.texts:
                t.encode("utf-8")  # every text that gets through is real Unicode, ready for a tokenizer


@fuzz("csv_rows")
@given(header=st.lists(st.one_of(field_name, any_text), min_size=1, max_size=4),
       rows=st.lists(st.lists(any_text, max_size=5), max_size=6), delimiter=st.sampled_from([",", "\t"]))
def test_random_csv_rows_are_read_or_refused(header, rows, delimiter):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("corpus.csv" if delimiter == "," else "corpus.tsv")
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
        path.write_bytes(buffer.getvalue().encode("utf-8", errors="surrogatepass"))
        read_or_refuse(lambda: read_corpus(path, label_field="label"), Path(tmp))


shard_file = st.tuples(
    st.sampled_from(["part-0", "part-1", "part-2", "README", "notes", "_SUCCESS", ".hidden", "sub/part-3"]),
    st.sampled_from([".jsonl", ".csv", ".txt", ".md", ""]),
    st.lists(st.sampled_from(["hello there", "", "another text", "card lost"]), min_size=0, max_size=4),
)


def write_shards(folder: Path, files) -> Path:
    """A folder of (stem, suffix, texts) files: .jsonl rows, a .csv with a text column, anything else a line per text."""
    folder.mkdir()
    for stem, suffix, texts in files:
        path = folder / f"{stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".jsonl":
            path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        else:
            path.write_text(("text\n" if suffix == ".csv" else "") + "".join(f"{t}\n" for t in texts))
    return folder


@fuzz("shard_folders")
@given(files=st.lists(shard_file, min_size=1, max_size=6, unique_by=lambda f: f[0] + f[1]))
def test_random_shard_folders_read_one_format_or_refuse(files):
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_shards(Path(tmp) / "shards", files)
        corpus = read_or_refuse(lambda: read_corpus(folder), Path(tmp))
        if corpus is not None:
            # the texts come from shards of one format only: never a README's lines mixed into the rows
            formats = {s for n, s, _ in files if not n.startswith((".", "_")) and s in (".jsonl", ".csv", ".txt")}
            readable = {s: [t for n, s2, ts in files if s2 == s and not n.startswith((".", "_")) for t in ts if t.strip()]
                        for s in formats}
            assert any(sorted(corpus.texts) == sorted(texts) for texts in readable.values())


@fuzz("pair_files")
@given(rows=st.lists(st.dictionaries(field_name, json_value, max_size=5), min_size=1, max_size=6),
       suffix=st.sampled_from([".jsonl", ".csv"]))
def test_random_pair_files_are_read_or_refused(rows, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"pairs{suffix}"
        if suffix == ".jsonl":
            path.write_bytes("".join(json.dumps(r) + "\n" for r in rows).encode("utf-8", errors="surrogatepass"))
        else:
            names = sorted({k for r in rows for k in r})
            if not names:
                names = ["text1"]
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=names)
            writer.writeheader()
            writer.writerows([{k: json.dumps(v) if not isinstance(v, str) else v for k, v in r.items()} for r in rows])
            path.write_bytes(buffer.getvalue().encode("utf-8", errors="surrogatepass"))
        pairs = read_or_refuse(lambda: read_pairs(path), Path(tmp))
        if pairs is not None:
            assert len(pairs.text1) == len(pairs.text2) == len(pairs)


# -- tuner folders --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_tuners(tmp_path_factory) -> dict[str, Path]:
    """One small fitted tuner of each kind that has weights shaped by its parameters, saved once."""
    from embtune.tuners import AutoencoderTuner, FeedForwardTuner, SpectralTuner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 12)).astype(np.float32)
    y = np.repeat(np.arange(4), 20)
    folders = {}
    for name, tuner, labels in (("feedforward", FeedForwardTuner(hidden_dim=8, n_epochs=2), y),
                                ("autoencoder", AutoencoderTuner(hidden_dim=8, n_epochs=2), None),
                                ("spectral", SpectralTuner(n_components=4), None)):
        tuner.fit(x, labels) if labels is not None else tuner.fit(x)
        folders[name] = tuner.save(tmp_path_factory.mktemp(name))
    return folders


def mutate_json(value, path: list, new):
    """``value`` with the item at ``path`` replaced by ``new`` (or deleted when ``new`` is the DELETE marker)."""
    if not path:
        return value if new is DELETE else new  # DELETE only removes a key of an object
    key = path[0]
    if isinstance(value, dict) and value:
        key = sorted(value)[key % len(value)]
        out = dict(value)
        if len(path) == 1 and new is DELETE:
            out.pop(key)
        else:
            out[key] = mutate_json(value[key], path[1:], new)
        return out
    if isinstance(value, list) and value:
        out = list(value)
        out[key % len(value)] = mutate_json(value[key % len(value)], path[1:], new)
        return out
    return value if new is DELETE else new


DELETE = object()


def load_or_refuse(folder: Path):
    from embtune.tuners.base import load_tuner

    before = snapshot(folder)
    try:
        tuner = load_tuner(folder)
    except EmbtuneError as e:
        assert str(folder) in str(e) and "\n" not in str(e)
        tuner = None
    assert snapshot(folder) == before, "loading changed a file"
    if tuner is not None:
        with np.errstate(all="ignore"):
            tuner.transform(np.zeros((2, tuner.n_features_in_), dtype=np.float32))
    return tuner


@fuzz("tuner_config")
@given(kind=st.sampled_from(["feedforward", "autoencoder", "spectral"]),
       path=st.lists(st.integers(0, 50), min_size=1, max_size=3),
       new=st.one_of(json_value, st.just(DELETE), st.integers(-10**15, 10**15), st.just(10**13)))
def test_corrupted_tuner_config_is_loaded_or_refused(saved_tuners, kind, path, new):
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(shutil.copytree(saved_tuners[kind], Path(tmp) / "tuner"))
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(mutate_json(config, path, new)))
        load_or_refuse(folder)


@fuzz("tuner_weights")
@given(kind=st.sampled_from(["feedforward", "autoencoder", "spectral"]),
       how=st.sampled_from(["truncate", "flip", "header", "empty", "missing"]),
       where=st.floats(0, 1), byte=st.integers(0, 255))
def test_corrupted_tuner_weights_are_loaded_or_refused(saved_tuners, kind, how, where, byte):
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(shutil.copytree(saved_tuners[kind], Path(tmp) / "tuner"))
        weights = folder / "model.safetensors"
        data = bytearray(weights.read_bytes())
        header_end = 8 + int.from_bytes(data[:8], "little")
        if how == "truncate":
            data = data[: int(where * len(data))]
        elif how == "flip":
            data[min(len(data) - 1, int(where * len(data)))] = byte
        elif how == "header":  # a byte inside the JSON header: shapes, dtypes, offsets
            data[8 + int(where * (header_end - 9))] = byte
        elif how == "empty":
            data = bytearray()
        if how == "missing":
            weights.unlink()
        else:
            weights.write_bytes(bytes(data))
        load_or_refuse(folder)


# -- vector writers -------------------------------------------------------------------------------------------------


chunks_strategy = st.lists(st.integers(1, 7), min_size=1, max_size=6)


def make_chunks(sizes: list[int], dim: int = 3):
    rng = np.random.default_rng(sum(sizes))
    start = 0
    out = []
    for n in sizes:
        out.append((rng.normal(size=(n, dim)).astype(np.float32), list(range(start + 1, start + n + 1))))
        start += n
    return out


@fuzz("resumable_writer")
@given(sizes=chunks_strategy, crash_after=st.integers(0, 6),
       damage=st.sampled_from(["none", "tail-garbage", "drop-vectors", "drop-ids", "cut-vectors", "bad-progress"]))
def test_interrupted_encode_always_finishes_identically(sizes, crash_after, damage):
    chunks = make_chunks(sizes)
    identity = {"corpus": "c", "model": "m"}
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "v.npy"
        first = ResumableVectorWriter(output, identity=identity)
        for vectors, ids in chunks[: min(crash_after, len(chunks))]:
            first.write(vectors, ids)
        first.release()  # the process died here: files and work folder stay as they were
        work = output.with_name("v.npy.partial")
        if damage == "tail-garbage" and (work / "vectors.npy").exists():  # a chunk half-written after the last commit
            with open(work / "vectors.npy", "ab") as f:
                f.write(b"\x00" * 7)
        elif damage == "drop-vectors":
            (work / "vectors.npy").unlink(missing_ok=True)
        elif damage == "drop-ids":
            (work / "ids.jsonl").unlink(missing_ok=True)
        elif damage == "cut-vectors" and (work / "vectors.npy").exists():
            data = (work / "vectors.npy").read_bytes()
            (work / "vectors.npy").write_bytes(data[: max(0, len(data) - 5)])
        elif damage == "bad-progress" and (work / "progress.json").exists():
            (work / "progress.json").write_text("{not json")
        second = ResumableVectorWriter(output, identity=identity)
        for index, (vectors, ids) in enumerate(chunks):
            if index >= second.chunks_done:
                second.write(vectors, ids)
        second.close()
        np.testing.assert_array_equal(np.load(output), np.concatenate([c[0] for c in chunks]))
        assert [json.loads(line) for line in ids_path_for(output).read_text().splitlines()] == [i for c in chunks for i in c[1]]
        assert not work.exists()
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["v.ids.jsonl", "v.npy"]


@fuzz("concurrent_writers")
@given(sizes=chunks_strategy)
def test_a_second_writer_on_the_same_output_is_refused_and_harms_nothing(sizes):
    from embtune.outputs import OutputLockedError

    chunks = make_chunks(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "v.npy"
        first = ResumableVectorWriter(output, identity={"run": 1})
        first.write(*chunks[0])
        with pytest.raises(OutputLockedError, match=r"another embtune run \(pid \d+\) is writing it"):
            ResumableVectorWriter(output, identity={"run": 2})  # another corpus: it would have wiped the work folder
        for vectors, ids in chunks[1:]:
            first.write(vectors, ids)
        first.close()
        np.testing.assert_array_equal(np.load(output), np.concatenate([c[0] for c in chunks]))


@fuzz("npy_writer")
@given(sizes=chunks_strategy, fail_at=st.integers(0, 6))
def test_npy_writer_leaves_the_old_file_or_the_new_one(sizes, fail_at):
    chunks = make_chunks(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.npy"
        np.save(path, np.ones((2, 3), dtype=np.float32))  # an earlier result
        failed = False
        try:
            with NpyStreamWriter(path, dim=3) as out:
                for index, (vectors, _) in enumerate(chunks):
                    if index == fail_at:
                        raise RuntimeError("killed")
                    out.write(vectors)
        except RuntimeError:
            failed = True
        expected = np.ones((2, 3), dtype=np.float32) if failed else np.concatenate([c[0] for c in chunks])
        np.testing.assert_array_equal(np.load(path), expected)
        assert [p.name for p in Path(tmp).iterdir()] == ["v.npy"]  # no temp file left behind


# -- the CLI end to end ---------------------------------------------------------------------------------------------


@fuzz("cli_encode")
@given(files=st.lists(shard_file, min_size=1, max_size=5, unique_by=lambda f: f[0] + f[1]))
def test_cli_encode_of_random_shard_folders_exits_0_or_1(tiny_model, files):
    from typer.testing import CliRunner

    from embtune.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_shards(Path(tmp) / "shards", files)
        before = snapshot(folder)
        result = CliRunner().invoke(app, ["encode", str(folder), "--model", str(tiny_model), "-o", str(Path(tmp) / "v.npy"),
                                          "-q", "--no-cache"])
        assert result.exit_code in (0, 1), result.output
        assert snapshot(folder) == before
        leftovers = sorted(p.name for p in Path(tmp).iterdir())
        assert leftovers == (["shards", "v.ids.jsonl", "v.npy"] if result.exit_code == 0 else ["shards"]), leftovers
