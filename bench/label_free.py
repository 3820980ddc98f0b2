"""Label-free fine-tuning of all-MiniLM-L6-v2 on a labelled dataset's train texts (labels unused), judged on held-out data.

Each objective trains on the dataset's *train* texts without labels, then the model is scored on
- the dataset's test split: KMeans(k = number of labels) V-measure, silhouette, Davies-Bouldin (mean +- std over 5
  seeds), kNN (k=10) and logistic-regression accuracy (fitted on the train vectors, scored on test);
- STS-B test: cosine Spearman (how much general ability is kept).
The base model is scored the same way. Wall time is the fine-tune alone.

Datasets: banking77 (../shared/data/banking77, 77 intents; the default) and rotten_tomatoes (review snippets, 2
sentiment labels; bench/bench_data.py, needs bench/requirements.txt).
Usage: .venv/bin/python bench/label_free.py [--dataset banking77] [--objectives augment,simcse,tsdae,ct] [--steps 150]
       [--batch-size 64] [--anchor W] [--no-length-grouping] [--seed S]; results go to bench/results/label_free.json (label_free_<dataset>.json for
       other datasets; models to bench/results/models/, deleted unless --keep-models).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
# steps x batch per objective, the protocol of ../shared/FINDINGS.md unless overridden on the command line
PROTOCOL = {"tsdae": {"batch_size": 16, "steps": 300, "learning_rate": 3e-5}}


def score(model: str, train: Path, test: Path) -> dict:
    import embtune

    held_out = embtune.evaluate(train, model=model, test=test, show_progress=False)
    stsb = DATA / "stsb" / "test.jsonl"
    sts = embtune.evaluate(stsb, model=model, text_field="text1", pairs=stsb, k=10, seeds=1, show_progress=False)
    m = held_out.metrics
    return {
        "v_measure": round(100 * m["v_measure"], 2), "v_measure_std": round(100 * m.std["v_measure"], 2),
        "silhouette": round(m["silhouette"], 4), "davies_bouldin": round(m["davies_bouldin"], 3),
        "knn_accuracy": round(100 * m["knn_accuracy"], 2), "logreg_accuracy": round(100 * m["logreg_accuracy"], 2),
        "sts_spearman": round(100 * sts.metrics["sts_spearman"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="banking77", help="banking77 or rotten_tomatoes")
    parser.add_argument("--objectives", default="augment,simcse,tsdae,ct")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="default: each objective's own")
    parser.add_argument("--anchor", type=float, default=0.0,
                        help="weight of the pull towards the base model (0: none, whatever the objective's default); "
                             "runs are stored as NAME+anchorW")
    parser.add_argument("--no-collapse-guard", action="store_true",
                        help="let a collapsing run go on (to measure the objective itself); stored as NAME-unguarded")
    parser.add_argument("--no-length-grouping", action="store_true",
                        help="batches in the plain shuffled order (length grouping off); stored as NAME-ungrouped")
    parser.add_argument("--seed", type=int, default=0, help="the fine-tune's seed (batch order, augmentations); "
                        "other seeds are stored as NAME@seedS")
    parser.add_argument("--keep-models", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS / ("label_free.json" if args.dataset == "banking77" else f"label_free_{args.dataset}.json")

    import embtune
    from bench_data import splits  # bench/bench_data.py (bench/ is on sys.path when run as a script)

    train, test = splits(args.dataset)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if "base" not in results:
        results["base"] = score("all-MiniLM-L6-v2", train, test)
        print("base", json.dumps(results["base"]), flush=True)
    for name in args.objectives.split(","):
        setup = {"steps": args.steps, "batch_size": args.batch_size, "learning_rate": args.lr, **PROTOCOL.get(name, {})}
        key = (name + (f"+anchor{args.anchor:g}" if args.anchor else "") + ("-unguarded" if args.no_collapse_guard else "")
               + ("-ungrouped" if args.no_length_grouping else "") + (f"@seed{args.seed}" if args.seed else ""))
        out = RESULTS / "models" / f"{args.dataset}-{key}"
        start = time.perf_counter()
        run = embtune.finetune(
            train, objective=name, output=out, overwrite=True, use_labels=False,
            max_steps=setup["steps"], batch_size=setup["batch_size"], learning_rate=setup["learning_rate"],
            eval_every=setup["steps"], show_progress=False, write_report=False,
            objective_params={"anchor": args.anchor},  # explicit: 0 measures the objective without its default anchor
            collapse_guard=not args.no_collapse_guard, length_grouping=False if args.no_length_grouping else None,
            seed=args.seed,
        )
        seconds = time.perf_counter() - start
        results[key] = {"setup": {**setup, "learning_rate": setup["learning_rate"] or "objective default",
                                  "anchor": args.anchor},
                         "train_seconds": round(seconds, 1), "stopped": run.stopped, **score(str(out), train, test)}
        print(key, json.dumps(results[key]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        if not args.keep_models:
            shutil.rmtree(out, ignore_errors=True)
    base = results["base"]
    print(f"\n{'':18s} {'V':>6s} {'sil':>6s} {'DB':>6s} {'kNN':>6s} {'LR':>6s} {'STS-B':>6s} {'time s':>7s}")
    for name, r in results.items():
        print(f"{name:18s} {r['v_measure']:6.2f} {r['silhouette']:6.3f} {r['davies_bouldin']:6.2f} "
              f"{r['knn_accuracy']:6.2f} {r['logreg_accuracy']:6.2f} {r['sts_spearman']:6.2f} "
              f"{r.get('train_seconds', 0):7.0f}  dV {r['v_measure'] - base['v_measure']:+.2f}")


if __name__ == "__main__":
    main()
