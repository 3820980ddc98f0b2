"""NeighborhoodTuner: move each vector towards its close neighbours in the user's corpus, without labels or training.

``transform(x) = normalise(x̂ + weight * mean of x's n_neighbors nearest corpus vectors whose cosine to x is at least
min_similarity)``, with x̂ = x / |x|. A strong encoder already puts most of a text's nearest neighbours in its own
group; averaging with them removes part of each text's idiosyncratic offset, so groups tighten without being redrawn.
A text with no neighbour that close (out of the corpus's domain) keeps its own direction, which is what keeps general
ability: on STS-B the tuned space scores like the base model.

"Fitting" stores the corpus vectors (unit length; a fixed-seed sample of ``max_corpus`` when there are more), so a
saved tuner carries them (n x d float32 in ``model.safetensors``). The search is exact (float64 matrix products, so a
row's result does not depend on the rows beside it) up to 50,000 stored vectors and a faiss HNSW index above.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from embtune.data.vectors import EXACT_NEIGHBORS_BELOW, hnsw_index, hnsw_search, l2_normalize
from embtune.tuners.base import TunerBase


class CorpusMemory(torch.nn.Module):
    """The stored corpus vectors as a buffer, so the shared safetensors save/load carries them."""

    def __init__(self, n: int, n_features: int):
        super().__init__()
        self.register_buffer("corpus", torch.zeros(n, n_features))


class NeighborhoodTuner(TunerBase):
    """Label-free neighbourhood smoothing of frozen vectors (no training; the output is unit length, same width).

    Parameters:
        n_neighbors: how many nearest corpus vectors are averaged.
        weight: how far towards the neighbours' mean a vector moves (0 leaves it as it is).
        min_similarity: only neighbours with at least this cosine count; a vector with none keeps its direction.
        max_corpus: vectors stored at most (a fixed-seed sample of a larger corpus); bounds the file and search time.
        batch_size: query rows per matrix product in the exact search.
        random_state: the sample's seed.

    >>> tuned = NeighborhoodTuner().fit(corpus_vectors).transform(new_vectors)
    """

    _module_attr = "memory_"
    _named_gates: tuple[str, ...] = ()  # min_similarity values a subclass resolves from the corpus in fit

    def __init__(
        self,
        n_neighbors: int = 10,
        weight: float = 1.0,
        min_similarity: float = 0.6,
        max_corpus: int = 200_000,
        batch_size: int = 1024,
        random_state=0,
    ):
        self.n_neighbors = n_neighbors
        self.weight = weight
        self.min_similarity = min_similarity
        self.max_corpus = max_corpus
        self.batch_size = batch_size
        self.random_state = random_state

    def _setup(self, n: int, n_features: int) -> None:
        self.n_features_in_, self.n_corpus_ = n_features, n
        self.memory_ = self._new_memory(n, n_features)
        self._index = None

    def _new_memory(self, n: int, n_features: int) -> torch.nn.Module:
        """The empty buffers a fitted tuner of this corpus size fills (and save/load carries)."""
        return CorpusMemory(n, n_features)

    def fit(self, X, y=None):
        """Store the corpus vectors ``X`` (labels, if given, are ignored)."""
        gate_ok = self.min_similarity in self._named_gates or (
            not isinstance(self.min_similarity, str) and -1 <= self.min_similarity <= 1)
        if int(self.n_neighbors) < 1 or self.weight < 0 or not gate_ok or self.max_corpus < 1:
            named = "".join(f" or {g!r}" for g in self._named_gates)
            raise ValueError(f"{type(self).__name__}: n_neighbors >= 1, weight >= 0, -1 <= min_similarity <= 1{named} "
                             f"and max_corpus >= 1 (got {self.n_neighbors}, {self.weight}, {self.min_similarity!r}, "
                             f"{self.max_corpus})")
        if not isinstance(self.min_similarity, str):
            self.min_similarity_ = float(self.min_similarity)
        X = validate_data(self, X, dtype=np.float32)
        if len(X) > self.max_corpus:
            keep = np.sort(check_random_state(self.random_state).choice(len(X), self.max_corpus, replace=False))
            X = X[keep]
        self._setup(len(X), X.shape[1])
        self.memory_.corpus = torch.from_numpy(l2_normalize(X).astype(np.float32))
        return self

    def transform(self, X, y=None):
        """Vectors moved towards their close corpus neighbours, (n, n_features) float32, unit length."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        x = l2_normalize(X).astype(np.float64)
        # In blocks: the gathered neighbours are (rows, k, d) float64, 30 GB for a million rows at once.
        return np.concatenate([self._tune_block(x[start : start + self.batch_size])
                               for start in range(0, len(x), self.batch_size)])

    def _tune_block(self, x: np.ndarray) -> np.ndarray:
        """``transform`` of unit float64 rows."""
        neighbours, similarity = self._search(x)
        close = similarity >= self.min_similarity_
        gathered = self.memory_.corpus.numpy()[neighbours].astype(np.float64)  # (n, k, d): no float64 copy of the corpus
        total = np.einsum("nk,nkd->nd", close.astype(np.float64), gathered)
        mean = total / np.maximum(close.sum(axis=1, keepdims=True), 1)
        out = x + self.weight * mean
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _search(self, x: np.ndarray, k: int | None = None, *, ef: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosines (n, k) of each row's k (default n_neighbors) nearest stored vectors; ``ef`` is the
        HNSW search breadth on a corpus big enough for the approximate search."""
        k = min(int(self.n_neighbors if k is None else k), self.n_corpus_)
        if self.n_corpus_ >= EXACT_NEIGHBORS_BELOW:
            return self._faiss_search(x, k, ef)
        corpus = self.memory_.corpus.numpy().astype(np.float64)
        found = np.empty((len(x), k), dtype=np.int64)
        cosines = np.empty((len(x), k))
        for start in range(0, len(x), self.batch_size):
            sims = x[start : start + self.batch_size] @ corpus.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            found[start : start + len(sims)] = top
            cosines[start : start + len(sims)] = np.take_along_axis(sims, top, axis=1)
        return found, cosines

    def _faiss_search(self, x: np.ndarray, k: int, ef: int = 64) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self, "_index", None) is None:  # built on first use, not saved: it is rebuilt from the corpus
            self._index = hnsw_index(self.memory_.corpus.numpy())
        cosines, found = hnsw_search(self._index, x, k, ef=ef)
        missing = found < 0  # HNSW may return fewer than k
        return np.where(missing, 0, found), np.where(missing, -np.inf, cosines)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_index", None)  # a faiss index does not pickle; it is rebuilt on first use
        return state

    def _fitted_state(self) -> dict[str, Any]:
        return {"n_features_in_": self.n_features_in_, "n_corpus_": self.n_corpus_, "min_similarity_": self.min_similarity_}

    def _rebuild(self, state: dict[str, Any]) -> None:
        self._setup(state["n_corpus_"], state["n_features_in_"])
        # folders saved before the gate was a fitted fact hold a numeric min_similarity, which was the gate
        self.min_similarity_ = float(state.get("min_similarity_", self.min_similarity))
