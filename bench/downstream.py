"""Pretrained embeddings in downstream classifiers, on BANKING77 (train -> test, 3,080 test texts, 77 intents).

textcnn: TextCNNClassifier over all-MiniLM-L6-v2's static token embeddings, frozen / trainable / random init, with
         10 and 50 labelled examples per class and the full train set: test macro-F1 and the gain of pretrained
         over random at each size.
fewshot: 8 examples per class, seeds 0..N-1: logistic regression on frozen vectors (the floor), embtune's
         FewShotClassifier (both with the label names as texts unless --label-names off), and SetFit (bench-only
         dependency, given the same texts) with the same base model, same seeds, same process: test accuracy,
         training wall time and CPU time (process time: fair when other jobs share the machine).

Setup: .venv/bin/pip install -c constraints.txt -r bench/requirements.txt
Usage: .venv/bin/python bench/downstream.py textcnn [--sizes 10,50,full] [--variants frozen,trainable,random]
       .venv/bin/python bench/downstream.py fewshot [--seeds 3] [--setfit-iterations 20] [--epochs 10] [--precision auto]
                                                  [--label-names auto|on|off] [--set hwu64|rotten_tomatoes]
Results are appended to bench/results/downstream.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

SET = "banking77"  # --set: any of bench/suite.py's text sets (its splits() finds the files)
RESULTS = Path(__file__).resolve().parent / "results" / "downstream.json"


def load(split: str) -> tuple[list[str], np.ndarray]:
    from suite import splits  # bench/suite.py

    path = dict(zip(("train", "test"), splits(SET)))[split]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["text"] for r in rows], np.array([str(r["label"]) for r in rows])


def per_class(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == y))[:n] for y in np.unique(labels)]))


def save(key: str, value: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[key] = value
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(key, json.dumps(value), flush=True)


def textcnn(args) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    from embtune.downstream import TextCNNClassifier

    train_x, train_y = load("train")
    test_x, test_y = load("test")
    for size in args.sizes.split(","):
        pick = np.arange(len(train_x)) if size == "full" else per_class(train_y, int(size), 0)
        row = {}
        for variant in args.variants.split(","):
            start = time.perf_counter()
            clf = TextCNNClassifier(embeddings=variant, n_epochs=args.epochs, random_state=0)
            clf.fit([train_x[i] for i in pick], train_y[pick])
            predicted = clf.predict(test_x)
            row[variant] = {"macro_f1": round(100 * f1_score(test_y, predicted, average="macro"), 2),
                            "accuracy": round(100 * accuracy_score(test_y, predicted), 2),
                            "epochs": clf.n_epochs_, "seconds": round(time.perf_counter() - start, 1)}
            print(size, variant, row[variant], flush=True)
        if "random" in row:
            for variant in ("frozen", "trainable"):
                if variant in row:
                    row[f"gain_{variant}_over_random"] = round(row[variant]["macro_f1"] - row["random"]["macro_f1"], 2)
        save(f"textcnn_{size}", {"n_train": len(pick), **row})


def setfit_run(texts, labels, test_x, seed: int, iterations: int) -> tuple[np.ndarray, float, float]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from embtune.encoders import resolve_model

    model = SetFitModel.from_pretrained(str(resolve_model("all-MiniLM-L6-v2").path), local_files_only=True)
    with tempfile.TemporaryDirectory() as scratch:  # SetFit writes checkpoints into output_dir (default ./checkpoints)
        args = TrainingArguments(output_dir=scratch, num_iterations=iterations, seed=seed, report_to="none",
                                 show_progress_bar=False)
        trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": texts, "label": list(labels)}))
        start, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return np.asarray(model.predict(test_x)), seconds, cpu_seconds


def fewshot(args) -> None:
    from sklearn.metrics import accuracy_score

    from embtune.downstream import FewShotClassifier

    train_x, train_y = load("train")
    test_x, test_y = load("test")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        pick = per_class(train_y, 8, seed)
        texts, labels = [train_x[i] for i in pick], train_y[pick]
        row = {"n_train": len(pick)}
        names = {"auto": "auto", "on": True, "off": False}[args.label_names]
        for name, clf in (("logreg_frozen", FewShotClassifier(epochs=0, label_names=names, random_state=seed)),
                          ("embtune_fewshot", FewShotClassifier(epochs=args.epochs, precision=args.precision,
                                                                label_names=names, random_state=seed))):
            start, cpu = time.perf_counter(), time.process_time()
            clf.fit(texts, labels)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            row[name] = {"precision": clf._mixed_precision("cpu") if name != "logreg_frozen" else "-",
                         "label_names": bool(clf.label_texts_),
                         "accuracy": round(100 * accuracy_score(test_y, clf.predict(test_x)), 2),
                         "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1)}
            print(seed, name, row[name], flush=True)
        if args.setfit_iterations:  # the same inputs as ours: the label-name texts too, where ours used them
            extra = clf.label_texts_
            fit_labels = np.concatenate([labels, clf.classes_]) if extra else labels
            predicted, seconds, cpu_seconds = setfit_run(texts + extra, fit_labels, test_x, seed, args.setfit_iterations)
            row["setfit"] = {"accuracy": round(100 * accuracy_score(test_y, predicted.astype(str)), 2),
                             "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                             "num_iterations": args.setfit_iterations, "label_names": bool(extra)}
            print(seed, "setfit", row["setfit"], flush=True)
        save(("" if args.set == "banking77" else f"{args.set}_") + f"fewshot_seed{seed}"
             + ("" if args.precision == "auto" else f"_{args.precision}")
             + ("" if args.label_names == "auto" else f"_names_{args.label_names}"), row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["textcnn", "fewshot"])
    parser.add_argument("--sizes", default="10,50,full")
    parser.add_argument("--variants", default="frozen,trainable,random")
    parser.add_argument("--epochs", type=float, default=None, help="textcnn: max epochs (30); fewshot: our epochs (10)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", help="fewshot: FewShotClassifier's precision (auto, bf16, fp32)")
    parser.add_argument("--set", default="banking77", help="fewshot: a text set of bench/suite.py (word labels: banking77, hwu64, "
                                                          "rotten_tomatoes)")
    parser.add_argument("--label-names", default="auto", choices=["auto", "on", "off"],
                        help="fewshot: FewShotClassifier's label_names (auto: each label's name is one more example "
                             "of it when the labels read as words, as BANKING77's do; SetFit gets the same texts)")
    parser.add_argument("--setfit-iterations", type=int, default=20, help="SetFit num_iterations (0 skips SetFit)")
    args = parser.parse_args()
    global SET
    SET = args.set
    if args.part == "textcnn":
        args.epochs = int(args.epochs or 30)
        textcnn(args)
    else:
        args.epochs = args.epochs if args.epochs is not None else 10.0
        fewshot(args)


if __name__ == "__main__":
    main()
