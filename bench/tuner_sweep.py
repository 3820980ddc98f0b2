"""Label-free tuners on frozen all-MiniLM-L6-v2 vectors: how far does a cheap tuner move a labelled dataset's clusters?

Each configuration fits an ``InfoNCETuner`` (or any tuner named with ``"method"``) on the dataset's *train* vectors
without labels, then the tuned train/test vectors are scored like bench/label_free.py scores a fine-tuned model (same
``evaluate_vectors`` as ``embtune evaluate``): KMeans(k = number of labels) V-measure on test (mean +- std over 5
seeds), silhouette, Davies-Bouldin, kNN and logistic-regression accuracy fitted on train and scored on test; and
STS-B test Spearman of the tuned vectors (the tuner applied to both sides; how much general ability is kept).

This is a sweep over hyperparameters scored on the test labels, so its best row is an upper bound on what the tuner
can give, not a result to quote as held-out; a chosen default must be checked on another dataset.

Usage: .venv/bin/python bench/tuner_sweep.py [--dataset banking77] [--model PATH] '{"positives": "neighbors"}' '{"positives":
       "neighbors", "temperature": 0.05}' ...   (each argument: the tuner's parameters as JSON; default: the
       neighbour-positive InfoNCE tuner with its defaults). Rows are appended to bench/results/tuner_sweep.json.
       ``--model`` tunes on another model's vectors, e.g. one fine-tuned label-free by ``bench/label_free.py
       --objectives neighbors --keep-models`` (bench/results/models/banking77-neighbors): a tuner stacked on a
       fine-tune. The row's ``base`` is then that model; the original's figures are in the first row of label_free.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
STSB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stsb" / "test.jsonl"


def score(train_vectors, train_labels, test_vectors, test_labels) -> dict:
    from embtune.evaluation.metrics import evaluate_vectors

    m = evaluate_vectors(train_vectors, labels=train_labels, test_vectors=test_vectors, test_labels=test_labels)
    return {
        "v_measure": round(100 * m["v_measure"], 2), "v_measure_std": round(100 * m.std["v_measure"], 2),
        "silhouette": round(m["silhouette"], 4), "davies_bouldin": round(m["davies_bouldin"], 3),
        "knn_accuracy": round(100 * m["knn_accuracy"], 2), "logreg_accuracy": round(100 * m["logreg_accuracy"], 2),
    }


def sts(a: np.ndarray, b: np.ndarray, gold: np.ndarray) -> float:
    from embtune.evaluation.sts import sts_spearman

    return round(100 * sts_spearman(a, b, gold), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=['{"positives": "neighbors"}'])
    parser.add_argument("--dataset", default="banking77", help="banking77 or rotten_tomatoes")
    parser.add_argument("--seed", type=int, default=0, help="the tuner's random_state")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="the encoder whose vectors are tuned")
    args = parser.parse_args()

    from bench_data import splits, tuner_from_spec  # bench/bench_data.py (bench/ is on sys.path when run as a script)

    from embtune.data.corpus import read_corpus
    from embtune.data.pairs import read_pairs
    from embtune.encoders import load_encoder

    train, test = splits(args.dataset)
    train_data, test_data = read_corpus(train, require_labels=True), read_corpus(test, require_labels=True)
    train_texts, train_labels = train_data.texts, np.array(train_data.labels)
    test_texts, test_labels = test_data.texts, np.array(test_data.labels)
    encoder = load_encoder(args.model)  # vectors are cached, so a second sweep starts at once
    train_vectors, test_vectors = encoder.encode(train_texts), encoder.encode(test_texts)
    stsb = read_pairs(STSB)
    sts_a, sts_b, gold = encoder.encode(stsb.text1), encoder.encode(stsb.text2), stsb.scores
    base = score(train_vectors, train_labels, test_vectors, test_labels)
    base["sts_spearman"] = sts(sts_a, sts_b, gold)
    print("base", json.dumps(base), flush=True)
    out = RESULTS / "tuner_sweep.json"
    rows = json.loads(out.read_text()) if out.is_file() else []
    for text in args.configs:
        params = {"method": "infonce", **json.loads(text)}
        if params["method"] == "infonce":
            params = {"positives": "neighbors", **params}
        start = time.perf_counter()
        tuner = tuner_from_spec(params, args.seed)
        tuner.fit(train_vectors)
        seconds = time.perf_counter() - start
        row = {"dataset": args.dataset, "model": args.model, "params": params, "seed": args.seed, "seconds": round(seconds, 1),
               "epochs": getattr(tuner, "n_epochs_", None), "base": base,
               **score(tuner.transform(train_vectors), train_labels, tuner.transform(test_vectors), test_labels),
               "sts_spearman": sts(tuner.transform(sts_a), tuner.transform(sts_b), gold)}
        row["delta_v"] = round(row["v_measure"] - base["v_measure"], 2)
        print(json.dumps({k: v for k, v in row.items() if k not in ("base", "dataset")}), flush=True)
        rows.append(row)
        RESULTS.mkdir(exist_ok=True)
        out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
