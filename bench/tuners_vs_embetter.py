"""embtune tuners vs embetter's finetuners, same data and hyper-parameters, one process; plus the label-free tuners.

Data: BANKING77 train/test (../shared/data/banking77) encoded with all-MiniLM-L6-v2 (through embtune's vector cache).
Accuracy is always held out: logistic regression (C=1, the FINDINGS protocol) fitted on the transformed training
vectors, scored on the transformed test set.

1. FeedForwardTuner(n_epochs=500, hidden_dim=200) on a 200-label subset and on the full 10,003: fit time, accuracy.
   embtune runs with its defaults (early stopping on a validation split from 1,000 examples, else on the training-loss
   plateau) and once more with n_iter_no_change=None (all 500 epochs, keep-best still on).
2. ContrastiveLearner(epochs=50, batch_size=256, shape_out=384) on ~4,400 pairs built from labels (1,100 anchors).
3. Seed scenario: 200 labels -> FeedForwardTuner -> accuracy and macro-F1 vs the untuned vectors.
4. Label-free tuners fitted on the train vectors without labels: test KMeans(k=77) V-measure and silhouette,
   mean +- std over 5 seeds, before/after.

Setup: `.venv/bin/pip install -c constraints.txt -r bench/requirements.txt` (embetter is a bench-only dependency).
Usage:  .venv/bin/python bench/tuners_vs_embetter.py [--skip-full] [--out bench/results/tuners.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "banking77"


def load(split: str):
    import embtune

    rows = [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text().splitlines()]
    vectors = embtune.encode([r["text"] for r in rows], show_progress=False)
    return vectors, np.array([r["label"] for r in rows])


def probe(train_x, train_y, test_x, test_y) -> dict:
    predicted = LogisticRegression(C=1.0, max_iter=3000).fit(train_x, train_y).predict(test_x)
    return {"accuracy": round(float(accuracy_score(test_y, predicted)), 4),
            "macro_f1": round(float(f1_score(test_y, predicted, average="macro")), 4)}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def feedforward_case(X, y, Xt, yt, n: int, seed: int = 0) -> dict:
    from embetter.finetune import FeedForwardTuner as EmbetterFFT

    from embtune.tuners import FeedForwardTuner

    index = np.random.default_rng(seed).choice(len(X), n, replace=False) if n < len(X) else np.arange(len(X))
    x, labels = X[index], y[index]
    torch.manual_seed(seed)
    theirs, t_theirs = timed(lambda: EmbetterFFT(n_epochs=500, hidden_dim=200).fit(x, labels))
    ours, t_ours = timed(lambda: FeedForwardTuner(n_epochs=500, hidden_dim=200, random_state=seed).fit(x, labels))
    full, t_full = timed(
        lambda: FeedForwardTuner(n_epochs=500, hidden_dim=200, random_state=seed, n_iter_no_change=None).fit(x, labels)
    )
    return {
        "n_labelled": int(n),
        "untuned": probe(x, labels, Xt, yt),
        "embetter": {"seconds": round(t_theirs, 2), **probe(theirs.transform(x), labels, theirs.transform(Xt), yt)},
        "embtune": {"seconds": round(t_ours, 2), "epochs_run": ours.n_epochs_, "best_epoch": ours.best_epoch_,
                    **probe(ours.transform(x), labels, ours.transform(Xt), yt)},
        "embtune_all_500_epochs": {"seconds": round(t_full, 2), "best_epoch": full.best_epoch_,
                                   **probe(full.transform(x), labels, full.transform(Xt), yt)},
        "speedup": round(t_theirs / t_ours, 1),
        "speedup_all_500_epochs": round(t_theirs / t_full, 1),
    }


def contrastive_case(X, y, Xt, yt, n_anchors: int = 1100, seed: int = 0) -> dict:
    from embetter.finetune import ContrastiveLearner as EmbetterCL

    from embtune.tuners import ContrastiveLearner
    from embtune.tuners.contrastive import label_pairs

    index = np.random.default_rng(seed).choice(len(X), n_anchors, replace=False)
    x, labels = X[index], y[index]
    first, second, target = label_pairs(labels, n_neg=3, rng=np.random.RandomState(seed))
    x1, x2 = x[first], x[second]
    params = {"epochs": 50, "batch_size": 256, "shape_out": 384}
    torch.manual_seed(seed)
    theirs, t_theirs = timed(lambda: EmbetterCL(**params).fit(x1, x2, target))
    ours, t_ours = timed(lambda: ContrastiveLearner(**params, random_state=seed).fit(x1, x2, target))
    return {
        "pairs": int(len(target)),
        "params": params,
        "untuned": probe(x, labels, Xt, yt),
        "embetter": {"seconds": round(t_theirs, 2), **probe(theirs.transform(x), labels, theirs.transform(Xt), yt)},
        "embtune": {"seconds": round(t_ours, 2), **probe(ours.transform(x), labels, ours.transform(Xt), yt)},
        "speedup": round(t_theirs / t_ours, 2),
    }


def label_free_case(X, Xt, yt) -> dict:
    from embtune.evaluation import cluster_metrics
    from embtune.tuners import AutoencoderTuner, InfoNCETuner

    def clusters(vectors):
        runs = cluster_metrics(vectors, 77, labels=yt, seeds=5)
        return {name: [round(float(np.mean(runs[name])), 4), round(float(np.std(runs[name])), 4)]
                for name in ("v_measure", "silhouette", "davies_bouldin")}

    out = {"base": clusters(Xt)}
    for name, tuner in [
        ("autoencoder", AutoencoderTuner(random_state=0)),
        ("infonce_augment", InfoNCETuner(random_state=0)),
        ("infonce_neighbors", InfoNCETuner(positives="neighbors", random_state=0)),
    ]:
        fitted, seconds = timed(lambda t=tuner: t.fit(X))
        out[name] = {"seconds": round(seconds, 1), "epochs": fitted.n_epochs_, **clusters(fitted.transform(Xt))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-full", action="store_true", help="skip the 10k FeedForwardTuner case (embetter: minutes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tuners.json")
    args = parser.parse_args()

    X, y = load("train")
    Xt, yt = load("test")
    results = {"feedforward_200": feedforward_case(X, y, Xt, yt, 200)}
    print(json.dumps(results["feedforward_200"], indent=1), flush=True)
    if not args.skip_full:
        results["feedforward_full"] = feedforward_case(X, y, Xt, yt, len(X))
        print(json.dumps(results["feedforward_full"], indent=1), flush=True)
    results["contrastive_learner"] = contrastive_case(X, y, Xt, yt)
    print(json.dumps(results["contrastive_learner"], indent=1), flush=True)
    results["label_free"] = label_free_case(X, Xt, yt)
    print(json.dumps(results["label_free"], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
