"""Fit a tuner on frozen vectors and score it against those vectors on held-out data, with the same KMeans k and
seeds on both sides (what `embtune tune` reports)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from embtune.errors import EmbtuneError
from embtune.evaluation.metrics import Metrics, evaluate_vectors
from embtune.evaluation.probes import holdout_split

log = logging.getLogger(__name__)

MIN_TO_HOLD_OUT = 20  # fewer vectors than this leave no held-out part worth comparing on


@dataclass
class Split:
    """Vectors (and labels, when there are any) to fit on and to compare on."""

    fit_x: np.ndarray
    fit_y: np.ndarray | None
    held_x: np.ndarray
    held_y: np.ndarray | None


def hold_out(vectors: np.ndarray, labels, *, fraction: float, seed: int, what: str) -> Split:
    """Hold out ``fraction`` of the vectors (stratified by ``labels`` when given) to compare on; ``what`` describes
    the corpus in the error for one too small."""
    if len(vectors) < MIN_TO_HOLD_OUT:
        raise EmbtuneError(f"{what}: too few texts to hold some out for a fair comparison (need {MIN_TO_HOLD_OUT})")
    labels = np.asarray(labels) if labels is not None else None
    fit_idx, held_idx = holdout_split(labels if labels is not None else np.zeros(len(vectors)), test_fraction=fraction,
                                      seed=seed)
    return Split(vectors[fit_idx], labels[fit_idx] if labels is not None else None, vectors[held_idx],
                 labels[held_idx] if labels is not None else None)


def fit_and_compare(tuner, split: Split, *, use_labels: bool, k: int | None, seeds: int,
                    seed: int) -> tuple[Metrics, Metrics, float]:
    """(metrics of the base vectors, metrics of the tuned ones, fit seconds): the tuner is fitted on ``split.fit_x``
    (with its labels when ``use_labels``); both spaces are scored with the same k (the base side's) and seeds."""
    log.info("fitting %s on %d vectors%s", type(tuner).__name__, len(split.fit_x), " with labels" if use_labels else "")
    start = time.perf_counter()
    tuner.fit(split.fit_x, split.fit_y) if use_labels else tuner.fit(split.fit_x)
    fit_seconds = time.perf_counter() - start
    before = evaluate_vectors(split.fit_x, labels=split.fit_y, test_vectors=split.held_x, test_labels=split.held_y,
                              k=k, seeds=seeds, seed=seed)
    after = evaluate_vectors(tuner.transform(split.fit_x), labels=split.fit_y, test_vectors=tuner.transform(split.held_x),
                             test_labels=split.held_y, k=before.info.get("k") or k, seeds=seeds, seed=seed)
    return before, after, fit_seconds
