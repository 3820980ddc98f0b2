"""Does `embtune auto`'s label-free criterion agree with the labels it never sees? Measured on the six text sets.

For each set, as `auto` does: hold out min(2000, 20 %) of the *train* texts (seeded), fit each candidate tuner on the
rest without labels, and score the held-out vectors with a label-free criterion. Separately, score every candidate the
way a user would judge it: test-split KMeans V-measure at k = labels (5 seeds, the suite's protocol; the same fitted
tuner transforms the test texts). Then, per set:

- the Spearman rank correlation between the criterion and test V-measure over the base and all candidates;
- what `choose` (beat the base beyond the KMeans-seed noise) picks, and whether that is within 0.5 V of the label-best
  candidate (the base counts as a candidate) and whether it is worse than the base.

Criteria compared (label-free, all on the held-out train texts):
- ``neighbour agreement``: what auto uses (embtune/evaluation/criterion.py): how often KMeans clusters in the
  candidate's space, at k = 5 to 80, keep each held-out text together with its 10 nearest neighbours in the base space;
  ties within the noise go to the candidate that keeps most of those neighbours among its own 10 (``kept``);
- ``silhouette x stability``: what auto used before (cosine silhouette of KMeans at k = held-out/10, times the ARI
  between KMeans seeds, each in the candidate's own space), with the same noise rule;
- ``agreement, highest score``: the same score without the tie rule (what auto did before).
Each choice is also scored by test kNN accuracy (k=10, fitted on the train vectors), as the suite does.

Usage: .venv/bin/python bench/criterion_agreement.py [--sets banking77,...] [--candidates variants|auto]
Writes bench/results/criterion_agreement.json. The candidates are tuners on cached base vectors (minutes, not hours);
the fine-tune candidates are judged by the same criterion code in `auto`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.stats import spearmanr

from bench_data import tuner_from_spec as tuner
from suite import RESULTS, SETS, SHARED, Space, cpu_flags, label as name  # bench/suite.py

CANDIDATES = (
    {"method": "spectral"},
    {"method": "spectral", "weight": 1.0, "min_similarity": 0.6, "diffusion_time": 0},
    {"method": "spectral", "n_components": 256, "weight": 1.0, "min_similarity": 0.6, "diffusion_time": 0},
    {"method": "neighborhood"},
    {"method": "neighborhood", "weight": 3.0, "n_neighbors": 30, "min_similarity": 0.3},
)


def own_geometry_score(x, k: int, seeds: int):
    """The criterion auto used before: per KMeans seed, silhouette x mean ARI to the other seeds, in x's own space."""
    from sklearn.metrics import adjusted_rand_score

    from embtune.data.vectors import l2_normalize
    from embtune.evaluation.clustering import _silhouette, kmeans_assign
    from embtune.evaluation.criterion import SpaceScore
    from embtune.evaluation.geometry import effective_rank, mean_pairwise_cosine

    unit = l2_normalize(np.asarray(x, dtype=np.float32))
    runs = [kmeans_assign(unit, k, seed) for seed in range(seeds)]
    silhouettes = [float(np.nan_to_num(_silhouette(unit, a, 0))) for a in runs]
    stabilities = [float(np.mean([adjusted_rand_score(a, b) for j, b in enumerate(runs) if j != i]))
                   for i, a in enumerate(runs)]
    per_seed = [a * b for a, b in zip(silhouettes, stabilities)]
    return SpaceScore(score=float(np.mean(per_seed)), std=float(np.std(per_seed)), silhouette=float(np.mean(silhouettes)),
                      stability=float(np.mean(stabilities)), effective_rank=effective_rank(unit),
                      spread=1.0 - mean_pairwise_cosine(unit), k=k, per_seed=per_seed)


def test_v(space: Space, test_x, seeds: int) -> float:
    """Test KMeans V-measure x100 at k = labels, mean over seeds (the suite's clustering figure, without its probes)."""
    from embtune.evaluation.metrics import cluster_metrics

    labels = np.array(space.test.labels)
    return round(100 * float(np.mean(cluster_metrics(test_x, len(set(labels.tolist())), seeds=seeds, labels=labels,
                                                     sample_seed=0)["v_measure"])), 2)


def auto_tuners() -> list[dict]:
    """The tuner candidates `embtune auto` tries by default, as bench specs."""
    from embtune.candidates import CANDIDATES as AUTO, DEFAULT_CANDIDATES

    return [dict(AUTO[n].options) for n in DEFAULT_CANDIDATES if AUTO[n].kind == "tuner"]


def one_set(name_: str, stsb, heldout: int, seeds: int, candidates=CANDIDATES) -> dict:
    from embtune.auto_select import MAX_K, TEXTS_PER_CLUSTER, _split
    from embtune.evaluation.criterion import choose, guard, referee_neighbours, score_space

    space = Space(name_, stsb)
    train_x = space.base[0]
    held, fit = _split(len(train_x), 0.2, heldout, seed=0)
    k = int(min(MAX_K, max(2, len(held) // TEXTS_PER_CLUSTER)))
    referee = referee_neighbours(train_x[held])
    base_score = score_space(train_x[held], k, seeds=seeds, referee=referee)
    base_old = own_geometry_score(train_x[held], k, seeds)
    rows = [{"name": "base", "criterion": base_score.score, "criterion_std": base_score.std,
             "old_criterion": base_old.score, "test_v": test_v(space, space.base[1], seeds), "kept": 1.0,
             "test_knn": test_knn(space, space.base[0], space.base[1])}]
    scores, old_scores = {}, {}
    for spec in candidates:
        started = time.perf_counter()
        t = tuner(spec).fit(train_x[fit])
        held_x = t.transform(train_x[held])
        s = scores[name(spec)] = guard(score_space(held_x, k, seeds=seeds, referee=referee), base_score)
        old_scores[name(spec)] = guard(own_geometry_score(held_x, k, seeds), base_old)
        test_x = t.transform(space.base[1])
        rows.append({"name": name(spec), "criterion": s.score, "criterion_std": s.std,
                     "old_criterion": old_scores[name(spec)].score, "rejected": s.rejected, "kept": s.kept,
                     "test_v": test_v(space, test_x, seeds), "test_knn": test_knn(space, t.transform(train_x), test_x),
                     "seconds": round(time.perf_counter() - started, 1)})
        print(f"  {name_} {rows[-1]}", flush=True)
    return {"set": name_, "k": k, "rows": rows, "chosen": {
        "neighbour agreement": choose(base_score, scores)[0],
        "silhouette x stability": choose(base_old, old_scores)[0],
        "agreement, highest score": highest_score(base_score, scores),
    }}


def highest_score(base, scores: dict) -> str:
    """The rule before ties went to the smaller change: auto's own choice with no ``kept`` to break a tie on (the
    highest-scoring candidate that passed its guards, if it beats the base)."""
    from dataclasses import replace

    from embtune.evaluation.criterion import choose

    return choose(base, {n: replace(s, kept=None) for n, s in scores.items()})[0]


def test_knn(space: Space, train_x, test_x) -> float:
    """Test kNN accuracy x100 (k=10, cosine, fitted on the train vectors), as the suite scores it."""
    from embtune.evaluation.probes import knn_accuracy

    return round(100 * knn_accuracy(train_x, np.array(space.train.labels), test_x, np.array(space.test.labels)), 2)


def verdicts(result: dict) -> dict:
    rows = result["rows"]
    v = {r["name"]: r["test_v"] for r in rows}
    knn = {r["name"]: r["test_knn"] for r in rows}
    best = max(v.values())
    tv = [r["test_v"] for r in rows]
    out = {"spearman": float(spearmanr([r["criterion"] for r in rows], tv).statistic),
           "spearman_old": float(spearmanr([r["old_criterion"] for r in rows], tv).statistic)}
    for criterion, chosen in result["chosen"].items():
        out[criterion] = {"chosen": chosen, "delta_v": round(v[chosen] - v["base"], 2),
                          "delta_knn": round(knn[chosen] - knn["base"], 2),
                          "within_0.5_of_best": v[chosen] >= best - 0.5, "worse_than_base": v[chosen] < v["base"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--heldout", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--candidates", choices=("variants", "auto"), default="variants",
                        help="variants: the tuner variants above; auto: the tuner candidates auto tries by default")
    args = parser.parse_args()
    candidates = auto_tuners() if args.candidates == "auto" else CANDIDATES
    from embtune.data.pairs import read_pairs

    stsb = read_pairs(SHARED / "stsb" / "test.jsonl")
    began, results = time.perf_counter(), []
    for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        result = one_set(set_name, stsb, args.heldout, args.seeds, candidates)
        result["verdict"] = verdicts(result)
        results.append(result)
        print(f"{set_name}: {json.dumps(result['verdict'])}", flush=True)
    lines = [f"# criterion agreement on {len(results)} sets, {(time.perf_counter() - began) / 60:.1f} min, {cpu_flags()}", "",
             "| criterion | mean Spearman (criterion vs test V) | within 0.5 V of label-best | worse than base | "
             "mean ΔV of choice | mean / worst ΔkNN of choice |", "|---|---|---|---|---|---|"]
    for criterion, rho in zip(results[0]["chosen"], ("spearman", "spearman_old", "spearman")):  # the order of "chosen"
        picks = [r["verdict"][criterion] for r in results]
        lines.append(f"| {criterion} | {np.mean([r['verdict'][rho] for r in results]):+.2f} | "
                     f"{sum(p['within_0.5_of_best'] for p in picks)}/{len(picks)} | "
                     f"{sum(p['worse_than_base'] for p in picks)}/{len(picks)} | {np.mean([p['delta_v'] for p in picks]):+.2f} | "
                     f"{np.mean([p['delta_knn'] for p in picks]):+.2f} / {min(p['delta_knn'] for p in picks):+.2f} |")
    lines += ["", "| set | " + " | ".join(results[0]["chosen"]) + " |", "|---|" + "---|" * len(results[0]["chosen"])]
    for r in results:
        lines.append(f"| {r['set']} | " + " | ".join(f"{p['chosen']} (V {p['delta_v']:+.2f}, kNN {p['delta_knn']:+.2f})" for c, p in r["verdict"].items()
                                                     if not c.startswith("spearman")) + " |")
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "criterion_agreement.json").write_text(json.dumps({"results": results, "table": lines}, indent=1) + "\n")


if __name__ == "__main__":
    main()
