"""Nothing a user owns is lost: outputs never replace inputs or a user's folders, one run at a time per output, honest
exit codes for the user's and the machine's problems (read-only folders, full disks, damaged files), and numbers that
stay right for extreme vectors. Each test is a case a user met (issue #21), run as the user runs it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embtune.cli import app
from embtune.outputs import MARKER, output_lock


def embtune(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embtune", *args], capture_output=True, text=True, timeout=300, env=env)


def invoke(*args: str):
    """The CLI in this process (faster than a subprocess; fault injection needs it)."""
    return CliRunner().invoke(app, list(args))


def snapshot(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def corpus(path: Path, rows: list[dict], n: int = 60) -> Path:
    path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows[:n]))
    return path


def error_line(result) -> str:
    stderr = result.stderr if isinstance(result, subprocess.CompletedProcess) else result.output
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", "internal error:"))]
    assert len(lines) == 1, stderr
    return lines[0]


def mount_tmpfs(path: Path, size: str, readonly: bool = False) -> bool:
    """A small real file system for the read-only and disk-full cases (needs root; else those tests inject errors)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    options = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def make(name: str, size: str = "1m", readonly: bool = False) -> Path | None:
        path = tmp_path / name
        if mount_tmpfs(path, size, readonly):
            mounted.append(path)
            return path
        return None

    yield make
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True)


# -- outputs never replace inputs or a user's files -----------------------------------------------------------------


def test_tune_into_its_own_model_folder_is_refused_and_the_model_is_untouched(tiny_model, tmp_path, demo_rows):
    model = Path(shutil.copytree(tiny_model, tmp_path / "my-model"))
    before = snapshot(model)
    result = invoke("tune", str(corpus(tmp_path / "c.jsonl", demo_rows)), "--model", str(model), "--method",
                    "neighborhood", "-o", str(model), "--no-report")
    assert result.exit_code == 1
    assert "is also an input" in error_line(result) and str(model) in error_line(result)
    assert snapshot(model) == before


def test_finetune_into_its_own_model_folder_is_refused_even_with_overwrite(tiny_model, tmp_path, demo_rows):
    model = Path(shutil.copytree(tiny_model, tmp_path / "my-model"))
    before = snapshot(model)
    result = invoke("finetune", str(corpus(tmp_path / "c.jsonl", demo_rows)), "--model", str(model), "--objective",
                    "simcse", "--max-steps", "1", "-o", str(model), "--no-report", "--overwrite")
    assert result.exit_code == 1 and "is also an input" in error_line(result)
    assert snapshot(model) == before


@pytest.mark.parametrize("command", ["tune", "finetune", "classify"])
def test_a_folder_holding_a_users_files_needs_overwrite_and_keeps_them(command, tiny_model, tmp_path, demo_rows):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "settings"}\n')
    (out / "notes.md").write_text("# mine\n")
    data = str(corpus(tmp_path / "c.jsonl", demo_rows))
    args = {
        "tune": ["tune", data, "--model", str(tiny_model), "--method", "neighborhood", "--no-report"],
        "finetune": ["finetune", data, "--model", str(tiny_model), "--objective", "simcse", "--max-steps", "1",
                     "--batch-size", "8", "--no-report"],
        "classify": ["classify", data, "--model", str(tiny_model), "--method", "logreg"],
    }[command] + ["-o", str(out)]
    before = snapshot(out)
    refused = invoke(*args)
    assert refused.exit_code == 1
    line = error_line(refused)
    assert "holds files embtune did not write (config.json, notes.md)" in line and "--overwrite" in line
    assert snapshot(out) == before and not (out / MARKER).exists()
    # --overwrite writes embtune's files and leaves the others alone
    done = invoke(*args, "--overwrite")
    assert done.exit_code == 0, done.output
    assert (out / "notes.md").read_text() == "# mine\n" and (out / MARKER).is_file()
    # embtune's own folder is then reused without --overwrite (a finetune folder holding a run asks for --resume)
    again = invoke(*args)
    if command == "finetune":
        assert again.exit_code == 1 and "already holds a training run" in error_line(again)
    else:
        assert again.exit_code == 0, again.output


def test_an_existing_file_as_a_folder_output_is_refused(tiny_model, tmp_path, demo_rows):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    result = invoke("tune", str(corpus(tmp_path / "c.jsonl", demo_rows)), "--model", str(tiny_model), "--method",
                    "neighborhood", "-o", str(notes), "--no-report")
    assert result.exit_code == 1 and "is a file, not a folder" in error_line(result)
    assert notes.read_text() == "mine\n"


def test_an_output_folder_that_holds_the_input_is_refused(tiny_model, tmp_path, demo_rows):
    data = corpus(tmp_path / "c.jsonl", demo_rows)
    result = invoke("tune", str(data), "--model", str(tiny_model), "--method", "neighborhood", "-o", str(tmp_path),
                    "--no-report", "--overwrite")
    assert result.exit_code == 1 and "holds an input" in error_line(result)


def test_the_ids_side_file_never_replaces_the_input(tiny_model, tmp_path, demo_rows):
    data = corpus(tmp_path / "d.ids.jsonl", demo_rows)
    before = snapshot(data)
    result = invoke("encode", str(data), "--model", str(tiny_model), "-o", str(tmp_path / "d.npy"))
    assert result.exit_code == 1 and "is also an input" in error_line(result)
    assert snapshot(data) == before and not (tmp_path / "d.npy").exists()


def test_the_ids_side_file_never_replaces_a_users_file(tiny_model, tmp_path, demo_rows):
    mine = tmp_path / "v.ids.jsonl"
    mine.write_text('{"my": "notes"}\n')
    result = invoke("encode", str(corpus(tmp_path / "c.jsonl", demo_rows)), "--model", str(tiny_model),
                    "-o", str(tmp_path / "v.npy"))
    assert result.exit_code == 1 and "move it away" in error_line(result)
    assert mine.read_text() == '{"my": "notes"}\n'


def test_a_failed_encode_into_new_folders_leaves_no_empty_folders(tiny_model, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n')
    result = invoke("encode", str(bad), "--model", str(tiny_model), "-o", str(tmp_path / "new" / "deeper" / "v.npy"))
    assert result.exit_code == 1 and "line 2: malformed JSON" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_predict_never_writes_over_its_input(tiny_model, tmp_path, demo_rows):
    data = corpus(tmp_path / "in.jsonl", demo_rows, 120)
    assert invoke("classify", str(data), "--model", str(tiny_model), "--method", "logreg", "-o", str(tmp_path / "clf")).exit_code == 0
    before = snapshot(data)
    result = invoke("predict", str(tmp_path / "clf"), str(data), "-o", str(data))
    assert result.exit_code == 1 and "is also an input" in error_line(result)
    assert snapshot(data) == before


def test_an_output_through_a_symlink_to_the_input_is_refused(tiny_model, tmp_path, demo_rows):
    data = corpus(tmp_path / "in.jsonl", demo_rows, 120)
    (tmp_path / "alias.jsonl").symlink_to(data)
    assert invoke("classify", str(data), "--model", str(tiny_model), "--method", "logreg", "-o", str(tmp_path / "clf")).exit_code == 0
    result = invoke("predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "alias.jsonl"))
    assert result.exit_code == 1 and "is also an input" in error_line(result)


def test_exported_model_files_have_a_plain_files_mode(tiny_model, tmp_path, demo_rows):
    from embtune.atomic import FILE_MODE

    out = tmp_path / "ft"
    result = invoke("finetune", str(corpus(tmp_path / "c.jsonl", demo_rows)), "--model", str(tiny_model), "--objective",
                    "simcse", "--max-steps", "1", "--batch-size", "8", "-o", str(out), "--no-report")
    assert result.exit_code == 0, result.output
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file() and "checkpoints" not in p.parts}
    assert modes and set(modes.values()) == {FILE_MODE}, modes


# -- shard folders --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_readme_beside_the_shards_is_skipped_and_listed(tiny_model, tmp_path, caplog):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-0.jsonl").write_text("".join(json.dumps({"text": f"first {i}"}) + "\n" for i in range(5)))
    (shards / "part-1.jsonl").write_text("".join(json.dumps({"text": f"second {i}"}) + "\n" for i in range(5)))
    (shards / "README.txt").write_text("These shards hold\nour tickets.\n")
    result = embtune("encode", str(shards), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"), "--no-cache")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 other file(s): README.txt" in result.stderr
    assert np.load(tmp_path / "v.npy").shape[0] == 10
    assert (tmp_path / "v.ids.jsonl").read_text().split() == [str(i) for i in range(1, 11)]


def test_equally_many_files_of_two_formats_are_refused_and_a_pattern_picks(tiny_model, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.jsonl").write_text(json.dumps({"text": "from jsonl"}) + "\n")
    (shards / "b.csv").write_text("text\nfrom csv\n")
    refused = invoke("encode", str(shards), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"))
    assert refused.exit_code == 1 and "equally many" in error_line(refused)
    picked = invoke("encode", str(shards / "*.csv"), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"))
    assert picked.exit_code == 0, picked.output
    assert np.load(tmp_path / "v.npy").shape[0] == 1


# -- one run per output ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_encode_of_the_same_output_says_who_holds_it(tiny_model, tmp_path, demo_rows):
    data = corpus(tmp_path / "c.jsonl", demo_rows)
    work = tmp_path / "v.npy.partial"
    work.mkdir()
    with output_lock(work / "lock", tmp_path / "v.npy"):  # this process plays the first run
        result = embtune("encode", str(data), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"))
    assert result.returncode == 1
    assert f"another embtune run (pid {os.getpid()}) is writing it" in error_line(result)
    # once the first run is gone, the same command works, and nothing was wedged
    again = embtune("encode", str(data), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"))
    assert again.returncode == 0, again.stderr
    assert not work.exists()


def test_a_second_tune_into_the_same_folder_is_refused_while_the_first_runs(tiny_model, tmp_path, demo_rows):
    out = tmp_path / "tuner"
    out.mkdir()
    (out / MARKER).write_text("{}")
    with output_lock(out / MARKER, out):
        result = invoke("tune", str(corpus(tmp_path / "c.jsonl", demo_rows)), "--model", str(tiny_model), "--method",
                        "neighborhood", "-o", str(out), "--no-report")
    assert result.exit_code == 1 and "another embtune run" in error_line(result)


@pytest.mark.slow
def test_a_torn_partial_is_started_over_with_one_warning(tiny_model, tmp_path, demo_rows):
    from embtune.data.resumable import ResumableVectorWriter
    from embtune.encoders import load_encoder
    from embtune.encoders.encode import encode_file

    data = corpus(tmp_path / "c.jsonl", demo_rows, 200)
    straight = encode_file(load_encoder(str(tiny_model)), data, tmp_path / "straight.npy", chunk_size=50)
    assert straight.items == 200

    class Killed(Exception):
        pass

    original = ResumableVectorWriter.write

    def write_then_die(self, vectors, ids):
        original(self, vectors, ids)
        if self.chunks_done == 2:
            raise Killed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ResumableVectorWriter, "write", write_then_die)
        with pytest.raises(Killed):
            encode_file(load_encoder(str(tiny_model)), data, tmp_path / "v.npy", chunk_size=50)
    (tmp_path / "v.npy.partial" / "vectors.npy").unlink()  # torn: progress says 2 chunks, the file is gone
    result = embtune("encode", str(data), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"), "--chunk-size", "50",
                     "--no-cache")
    assert result.returncode == 0, result.stderr
    assert "is damaged (vectors.npy is missing); starting over" in result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), np.load(tmp_path / "straight.npy"), atol=1e-6)


# -- the machine's problems: exit 1 with the path -------------------------------------------------------------------


def test_a_read_only_output_folder_fails_at_once_with_the_path(tiny_model, tmp_path, demo_rows, tmpfs, monkeypatch):
    data = corpus(tmp_path / "c.jsonl", demo_rows)
    folder = tmpfs("ro", readonly=True)
    if folder is None:  # no mount here: the file system's answer, injected at the probe
        folder = tmp_path / "ro"
        import embtune.outputs as outputs

        def read_only(*a, **k):
            raise OSError(errno.EROFS, "Read-only file system", str(folder))

        monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    for args in (["encode", str(data), "--model", str(tiny_model), "-o", str(folder / "v.npy")],
                 ["tune", str(data), "--model", str(tiny_model), "--method", "neighborhood", "-o", str(folder / "t")]):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        assert str(folder) in error_line(result) and "Read-only file system" in error_line(result)


@pytest.mark.slow
def test_a_full_disk_fails_with_the_path_and_leaves_a_resumable_run(tiny_model, tmp_path, demo_rows, tmpfs):
    data = corpus(tmp_path / "c.jsonl", demo_rows, 400)
    folder = tmpfs("full", size="16k")
    if folder is None:
        pytest.skip("mounting a small tmpfs needs root; test_disk_full_mid_write_is_exit_1 injects the error instead")
    result = embtune("encode", str(data), "--model", str(tiny_model), "-o", str(folder / "v.npy"), "--no-cache")
    assert result.returncode == 1
    line = error_line(result)
    assert "v.npy" in line and "free" in line


def test_disk_full_mid_write_is_exit_1_with_the_path(tiny_model, tmp_path, demo_rows, monkeypatch):
    """ENOSPC from a write has no file name: the writer adds it, and the CLI says what to do (injected at the write)."""
    import embtune.data.resumable as resumable

    data = corpus(tmp_path / "c.jsonl", demo_rows, 100)
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_then_full(fd):  # chunk 1 commits (vectors, ids, progress.json); chunk 2 meets a full disk
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    with monkeypatch.context() as m:  # not monkeypatch.undo(): that would also drop conftest's private cache folder
        m.setattr(resumable.os, "fsync", fsync_then_full)
        result = invoke("encode", str(data), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"), "--chunk-size",
                        "30", "--no-cache")
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "v.npy.partial" in line and "the disk is full" in line
    again = invoke("encode", str(data), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy"), "--chunk-size", "30",
                   "--no-cache", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["resumed_rows"] == 30  # the committed chunk was kept for the resume


def test_predict_into_a_read_only_folder_fails_before_the_work(tmp_path, monkeypatch):
    import embtune.api as api
    import embtune.outputs as outputs

    def no_work(*a, **k):
        raise AssertionError("predict ran before checking its output")

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(api, "predict", no_work)
    monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    (tmp_path / "in.jsonl").write_text('{"text": "hello"}\n')
    result = invoke("predict", str(tmp_path / "clf"), str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "ro" / "p.jsonl"))
    assert result.exit_code == 1 and "cannot write here" in error_line(result)


# -- damaged inputs: exit 1 with the file ---------------------------------------------------------------------------


@pytest.fixture
def saved_tuner(tmp_path, demo_rows, tiny_model):
    out = tmp_path / "tuner"
    result = invoke("tune", str(corpus(tmp_path / "c.jsonl", demo_rows, 120)), "--model", str(tiny_model), "--method",
                    "feedforward", "--epochs", "2", "-o", str(out), "--no-report")
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("damage", ["truncate", "no-fitted", "wrong-type", "huge-dim", "no-weights"])
def test_a_damaged_tuner_folder_is_exit_1_naming_it(saved_tuner, tmp_path, damage):
    config = json.loads((saved_tuner / "config.json").read_text())
    weights = saved_tuner / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "no-fitted":
        config.pop("fitted")
    elif damage == "wrong-type":
        config["params"]["hidden_dim"] = "wide"
    elif damage == "huge-dim":
        config["params"]["hidden_dim"] = 10**13
    elif damage == "no-weights":
        weights.unlink()
    (saved_tuner / "config.json").write_text(json.dumps(config))
    result = invoke("encode", str(tmp_path / "c.jsonl"), "--tuner", str(saved_tuner), "-o", str(tmp_path / "t.npy"))
    assert result.exit_code == 1, result.output
    assert str(saved_tuner) in error_line(result) and "embtune tune -o" in error_line(result)


@pytest.mark.parametrize("damage", ["truncate-weights", "wrong-params"])
def test_a_damaged_classifier_folder_is_exit_1_naming_it(tiny_model, tmp_path, demo_rows, damage):
    data = corpus(tmp_path / "in.jsonl", demo_rows, 120)
    clf = tmp_path / "clf"
    assert invoke("classify", str(data), "--model", str(tiny_model), "--method", "textcnn", "--epochs", "1",
                  "-o", str(clf)).exit_code == 0
    if damage == "truncate-weights":
        weights = next(clf.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        config = json.loads((clf / "config.json").read_text())
        config["params"] = {"no_such_parameter": 1}
        (clf / "config.json").write_text(json.dumps(config))
    result = invoke("predict", str(clf), str(data), "-o", str(tmp_path / "p.jsonl"))
    assert result.exit_code == 1, result.output
    assert f"{clf}: damaged classifier folder" in error_line(result)


def test_a_lone_surrogate_names_the_file_and_line(tmp_path):
    data = tmp_path / "s.jsonl"
    data.write_text('{"text": "fine"}\n{"text": "bad \\ud800 text"}\n')
    result = invoke("encode", str(data), "-o", str(tmp_path / "v.npy"))
    assert result.exit_code == 1
    assert f"{data} line 2: field 'text' holds a lone surrogate" in error_line(result)


def test_a_corrupt_parquet_page_names_the_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": [f"text number {i} " * 20 for i in range(500)]}), data, compression="none")
    raw = bytearray(data.read_bytes())
    raw[200:2000] = b"\xff" * 1800
    data.write_bytes(bytes(raw))
    result = invoke("encode", str(data), "-o", str(tmp_path / "v.npy"), "--no-cache")
    assert result.exit_code == 1 and f"{data}: damaged parquet data" in error_line(result)


def test_vectors_of_strings_or_with_bad_rows_are_exit_1(tmp_path, demo_rows):
    data = corpus(tmp_path / "c.jsonl", demo_rows, 40)
    np.save(tmp_path / "s.npy", np.array([["a", "b"]] * 40))
    result = invoke("evaluate", str(data), "--vectors", str(tmp_path / "s.npy"))
    assert result.exit_code == 1 and "not numbers" in error_line(result)
    bad = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    bad[[3, 7]] = 0
    bad[11, 2] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    result = invoke("evaluate", str(data), "--vectors", str(tmp_path / "bad.npy"))
    assert result.exit_code == 1
    assert "1 row(s) with NaN or infinite values (rows 12)" in error_line(result)
    assert "2 row(s) with only zeros (no direction) (rows 4, 8)" in error_line(result)


def test_huge_finite_vectors_score_like_the_same_vectors_at_unit_scale(tmp_path, demo_rows):
    import embtune

    rng = np.random.default_rng(0)
    labels = [r["label"] for r in demo_rows[:300]]
    centres = {label: rng.normal(size=16) for label in set(labels)}
    x = np.stack([centres[label] + 0.3 * rng.normal(size=16) for label in labels]).astype(np.float32)
    data = corpus(tmp_path / "c.jsonl", demo_rows, 300)
    base = embtune.evaluate(data, vectors=x, seeds=2).metrics
    huge = embtune.evaluate(data, vectors=x * np.float32(1e30), seeds=2).metrics
    for name in ("v_measure", "knn_accuracy", "silhouette", "logreg_accuracy"):
        assert huge[name] == pytest.approx(base[name], abs=1e-6), name
    assert base["v_measure"] > 0.5


def test_a_corrupt_cache_says_cache_clear_and_cache_clear_repairs_it(tiny_model, tmp_path, demo_rows, isolated_cache):
    data = corpus(tmp_path / "c.jsonl", demo_rows, 20)
    args = ["encode", str(data), "--model", str(tiny_model), "-o", str(tmp_path / "v.npy")]
    assert invoke(*args).exit_code == 0
    for f in isolated_cache.glob("vectors.sqlite*"):
        f.write_bytes(b"this is not a database" * 100)
    broken = invoke(*args)
    assert broken.exit_code == 1 and "run `embtune cache clear`" in error_line(broken)
    cleared = invoke("cache", "clear")
    assert cleared.exit_code == 0, cleared.output
    assert "removed the damaged cache file" in cleared.output
    assert invoke(*args).exit_code == 0


def test_a_negative_cache_limit_is_refused_and_cache_clear_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBTUNE_CACHE_MAX_GB", "-1")
    (tmp_path / "c.txt").write_text("hello\n")
    result = invoke("encode", str(tmp_path / "c.txt"), "-o", str(tmp_path / "v.npy"))
    assert result.exit_code == 1 and "EMBTUNE_CACHE_MAX_GB='-1'" in error_line(result)
    assert invoke("cache", "clear").exit_code == 0


def test_a_cache_folder_that_cannot_be_written_costs_only_the_recomputation(tmp_path, monkeypatch, caplog):
    import logging

    import embtune.explore.maps as maps
    from embtune.atomic import write_cache

    assert write_cache(tmp_path / "ok" / "a.bin", lambda f: f.write(b"abc"), "a test file")
    assert (tmp_path / "ok" / "a.bin").read_bytes() == b"abc"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a user's file")
    monkeypatch.setattr(maps, "maps_dir", lambda: blocker / "maps")  # the cache folder's parent is a file
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="embtune"):
        first, second = maps.project(x), maps.project(x)
    assert first.shape == (50, 2) and np.array_equal(first, second)
    assert "could not cache the explorer's map in " + str(blocker / "maps") in caplog.text
    assert blocker.read_text() == "a user's file" and list(tmp_path.glob("**/*.tmp")) == []


# -- output the user reads ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_json_output_is_valid_json_with_null_and_a_reason_for_undefined_numbers(tiny_model, tmp_path, demo_rows):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"text1": f"a {i}", "text2": f"b {i}", "score": 3.0}) + "\n" for i in range(20)))
    result = embtune("evaluate", str(corpus(tmp_path / "c.jsonl", demo_rows)), "--model", str(tiny_model), "--pairs",
                     str(pairs), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"bare {c} in --json output"))
    assert payload["metrics"]["sts_spearman"] is None
    assert "metrics.sts_spearman" in payload["undefined"]
    assert "every pair has the same gold score" in result.stderr


@pytest.mark.slow
def test_quiet_shows_no_library_warnings(tiny_model, tmp_path):
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": "same text", "label": str(i % 2)}) + "\n" for i in range(30)))
    loud = embtune("evaluate", str(data), "--model", str(tiny_model))
    quiet = embtune("evaluate", str(data), "--model", str(tiny_model), "-q")
    assert loud.returncode == quiet.returncode == 0
    assert "Warning" in loud.stderr or "warning" in loud.stderr  # the case does make libraries warn
    assert quiet.stderr.strip() == "", quiet.stderr


def test_labels_1_and_string_1_are_merged_with_a_warning(tmp_path, caplog):
    from embtune.data.corpus import read_corpus

    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": f"t {i}", "label": 1 if i % 2 else "1"}) + "\n" for i in range(6)))
    with caplog.at_level("WARNING"):
        corpus_read = read_corpus(data)
    assert set(corpus_read.labels) == {"1"}
    warnings = [r.getMessage() for r in caplog.records if "read as one class" in r.getMessage()]
    assert len(warnings) == 1 and "line 1" in warnings[0] and "line 2" in warnings[0]


def test_contrastive_tuner_names_missing_labels():
    from embtune.tuners import ContrastiveTuner

    with pytest.raises(ValueError, match=r"1 missing label\(s\) \(None or NaN\) at row\(s\) 1"):
        ContrastiveTuner().fit(np.zeros((4, 3), dtype=np.float32), ["a", None, "b", "a"])


def test_an_error_quoting_a_line_break_stays_one_line(tmp_path):
    """Found by the fuzz suite: a CSV header cell holding a line break made the error two lines."""
    data = tmp_path / "c.csv"
    data.write_text('"a\nb",other\n"x",y\n')
    result = invoke("encode", str(data), "-o", str(tmp_path / "v.npy"))
    assert result.exit_code == 1
    line = error_line(result)
    assert "no field 'text'" in line and "--text-field 'a\\nb'" in line
