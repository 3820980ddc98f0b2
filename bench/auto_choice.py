"""Does `embtune auto` choose well without labels? Run it on a labelled corpus, labels hidden from the choice.

auto splits the corpus (train file) into a fit part and a held-out part, trains every candidate on the fit part, and
chooses by its label-free criterion on the held-out part. The labels of the held-out part are then used, only to
report, for V-measure (KMeans, k = number of labels, 5 seeds) and leave-one-out 10-NN accuracy per candidate. The
question: is the chosen candidate's V-measure within 1 point of the best candidate's by labels, and >= the base model's?

Datasets: banking77 (../shared/data/banking77/train.jsonl, 77 intents) and rotten_tomatoes (review
sentiment, 2 labels; bench/bench_data.py).
Usage: .venv/bin/python bench/auto_choice.py --dataset banking77 [--budget-minutes 30] [--candidates a,b,...]
       results: bench/results/auto_<dataset>/auto.json and report.html, and a summary printed at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="banking77")
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--candidates", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import embtune
    from bench_data import splits  # bench/bench_data.py (bench/ is on sys.path when run as a script)

    out = RESULTS / f"auto_{args.dataset}"
    result = embtune.auto(splits(args.dataset)[0], output=out, budget_minutes=args.budget_minutes,
                          candidates=args.candidates, overwrite=True, seed=args.seed, show_progress=False)
    rows = [r for r in result.candidates if "score" in r]
    best = max((r for r in rows if r["status"] == "scored"), key=lambda r: r["v_measure"])
    chosen = next(r for r in rows if r["chosen"])
    base = rows[0]
    print(f"\n{args.dataset}: {result.n_fit} texts to fit, {result.n_heldout} held out, criterion k={result.k}, "
          f"{result.seconds / 60:.1f} min")
    print(f"{'candidate':28s} {'status':9s} {'criterion':>16s} {'V':>6s} {'kNN':>6s} {'secs':>6s}")
    for r in result.candidates:
        crit = f"{r['score']:.4f}±{r['std']:.4f}" if "score" in r else ""
        v = f"{100 * r['v_measure']:6.2f}" if "v_measure" in r else " " * 6
        knn = f"{100 * r['knn_accuracy']:6.2f}" if "knn_accuracy" in r else " " * 6
        print(f"{('* ' if r['chosen'] else '  ') + r['name']:28s} {r['status']:9s} {crit:>16s} {v} {knn} "
              f"{r.get('seconds', 0):6.0f}")
    gap = 100 * (best["v_measure"] - chosen["v_measure"])
    print(f"chosen {chosen['name']} V {100 * chosen['v_measure']:.2f}; best by labels {best['name']} "
          f"V {100 * best['v_measure']:.2f} (gap {gap:.2f}, target <= 1); base V {100 * base['v_measure']:.2f} "
          f"(chosen - base {100 * (chosen['v_measure'] - base['v_measure']):+.2f}, target >= 0)")
    summary = {"dataset": args.dataset, "chosen": chosen["name"], "best_by_labels": best["name"], "gap_v": round(gap, 2),
               "chosen_minus_base_v": round(100 * (chosen["v_measure"] - base["v_measure"]), 2)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
