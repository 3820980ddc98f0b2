"""SpectralTuner: append each vector's coordinates on the corpus's nearest-neighbour graph, without labels or training.

Fitting links every stored corpus vector to its ``n_neighbors`` nearest ones (edge weight = cosine, floored at 0),
symmetrises the graph and keeps the ``n_components`` leading eigenvectors of its normalised adjacency
``D^-1/2 W D^-1/2`` (a spectral embedding: texts joined by many short paths get close coordinates, so groups that a
plain cosine space shows as touching clouds come apart). A new vector gets its coordinates by the Nyström extension
from its nearest stored vectors whose cosine is at least the gate ``min_similarity_``::

    u(x) = sum_j w_xj / sqrt(d_x d_j) * U_j / lambda        (w_xj = cosine to stored vector j, d = degrees)
    s(x) = u(x) * lambda ** diffusion_time                   (diffusion-map weighting of the components)
    transform(x) = normalise([x̂, weight * strength * g(x) * s(x) / |s(x)|])

with g(x) the fraction of x's n_neighbors nearest stored vectors that pass the gate and ``strength`` how much group
structure the graph has: the mean of ``p_i = lambda_i ** diffusion_time`` over the kept components, each weighted by
its own p_i (``sum p_i^2 / sum p_i``; 1 at t = 0), so components that the weighting already fades do not dilute it. A text with no close neighbour
(out of the corpus's domain) gets no spectral part, so among such texts cosines are the base model's: on STS-B the
tuned space scores like the base model. The output is ``n_features + n_components`` wide and unit length.

The defaults adapt to the corpus by two written rules, not by constants fitted to one data set:

- **Gate from the corpus's own similarity scale** (``min_similarity="auto"``): the 20th percentile, over the stored
  vectors, of the cosine to their own ``n_neighbors``-th neighbour. A new vector's neighbour counts when it is at least
  as close as that neighbour is for 80 % of the corpus. A fixed cosine does not transfer: 0.6 lets 99 % of BANKING77's
  test neighbours through but 40 % of a biomedical-titles set's and 25 % of a web-snippets set's, so on those sets
  g(x) split the texts by local density rather than topic.
- **Components weighted by how well they separate the graph** (``diffusion_time=4``): component i is scaled by
  ``lambda_i ** 4`` (the diffusion-map weighting, the walk's step-4 view of the graph). On a corpus with sharp groups
  many eigenvalues sit near 1 and keep their weight; on a corpus with weak groups the eigenvalues fall off fast and the
  noisy components fade, instead of counting as much as the first. The same weighting sets how long the appended
  part is: ``strength`` is 0.94 on BANKING77 (77 intents, sharp groups), 0.63 on a biomedical-titles set and 0.36 on
  a two-class sentiment set, so a graph with little group structure moves the neighbours less (without it the
  biomedical set lost 0.9 points of kNN accuracy).

Measured on six text sets (bench/suite.py; frozen all-MiniLM-L6-v2, fit on train without labels, test KMeans
V-measure, 5 seeds) the old fixed defaults (gate 0.6, equal weights, weight 1) gave +4.3 on BANKING77 but -3.4 on the
biomedical set (mean +0.6); the adaptive ones gain on every set (figures in the README and ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from embtune.data.vectors import GRAPH_EF_SEARCH
from embtune.tuners.neighborhood import NeighborhoodTuner

log = logging.getLogger(__name__)
DENSE_EIGEN_BELOW = 2000  # a dense eigendecomposition is exact and fast below this many stored vectors
GATE_FROM_CORPUS = "auto"
GATE_PERCENTILE = 20  # min_similarity="auto": the corpus's n_neighbors-th-neighbour cosine that 80 % of it reaches


class SpectralMemory(torch.nn.Module):
    """The stored corpus, its graph eigenvectors, eigenvalues and degrees as buffers (saved as safetensors)."""

    def __init__(self, n: int, n_features: int, n_components: int):
        super().__init__()
        self.register_buffer("corpus", torch.zeros(n, n_features))
        self.register_buffer("eigenvectors", torch.zeros(n, n_components, dtype=torch.float64))
        self.register_buffer("eigenvalues", torch.zeros(n_components, dtype=torch.float64))
        self.register_buffer("degrees", torch.zeros(n, dtype=torch.float64))


class SpectralTuner(NeighborhoodTuner):
    """Label-free spectral coordinates on the corpus's neighbour graph, appended to each unit vector (no training).

    Parameters:
        n_components: graph eigenvectors kept (columns appended to each vector).
        n_neighbors: graph edges per stored vector, and stored vectors a new vector's coordinates are taken from.
        weight: length of the appended part relative to the (unit) vector; 0 gives the unit vectors back plus zeros.
        min_similarity: only neighbours with at least this cosine give coordinates (a vector with none gets zeros);
            ``"auto"``: the 20th percentile of the stored vectors' cosine to their n_neighbors-th neighbour.
        diffusion_time: component i is scaled by eigenvalue_i ** diffusion_time (0: all components count alike).
        max_corpus: vectors stored at most (a fixed-seed sample of a larger corpus); bounds the file and the fit time.
        batch_size: query rows per matrix product in the exact search.
        random_state: the sample's seed.

    >>> tuned = SpectralTuner().fit(corpus_vectors).transform(new_vectors)
    """

    def __init__(
        self,
        n_components: int = 64,
        n_neighbors: int = 10,
        weight: float = 0.5,
        min_similarity: float | str = "auto",
        diffusion_time: float = 4.0,
        max_corpus: int = 200_000,
        batch_size: int = 1024,
        random_state=0,
    ):
        super().__init__(n_neighbors=n_neighbors, weight=weight, min_similarity=min_similarity, max_corpus=max_corpus,
                         batch_size=batch_size, random_state=random_state)
        self.n_components = n_components
        self.diffusion_time = diffusion_time

    _named_gates = (GATE_FROM_CORPUS,)

    def _new_memory(self, n: int, n_features: int) -> SpectralMemory:
        self.n_components_ = min(int(self.n_components), n)  # a corpus of n vectors has n eigenvectors
        return SpectralMemory(n, n_features, self.n_components_)

    def fit(self, X, y=None):
        """Store the corpus vectors ``X`` and their graph's leading eigenvectors (labels, if given, are ignored)."""
        if int(self.n_components) < 1:
            raise ValueError(f"SpectralTuner: n_components >= 1 (got {self.n_components})")
        if not float(self.diffusion_time) >= 0:
            raise ValueError(f"SpectralTuner: diffusion_time >= 0 (got {self.diffusion_time})")
        super().fit(X)  # checks the shared parameters, stores the (sampled) unit corpus, calls _new_memory
        corpus = self.memory_.corpus.numpy().astype(np.float64)
        start = time.perf_counter()
        graph, kth_cosine = self._graph(corpus)
        if self.min_similarity == GATE_FROM_CORPUS:
            self.min_similarity_ = float(np.percentile(kth_cosine, GATE_PERCENTILE))
        self.diffusion_time_ = float(self.diffusion_time)
        if len(corpus) >= DENSE_EIGEN_BELOW:  # minutes at the 200,000-vector cap: say what is happening
            log.info("SpectralTuner: %d-nearest-neighbour graph of %d vectors in %.0f s; computing %d eigenvectors",
                     self.n_neighbors, len(corpus), time.perf_counter() - start, self.n_components_)
        degrees = np.asarray(graph.sum(axis=1)).ravel()
        scale = scipy.sparse.diags(1 / np.sqrt(np.maximum(degrees, 1e-12)))
        start = time.perf_counter()
        values, vectors = _leading_eigenpairs(scale @ graph @ scale, self.n_components_,
                                              _component_vectors(graph, degrees, self.n_components_))
        if len(corpus) >= DENSE_EIGEN_BELOW:
            log.info("SpectralTuner: eigenvectors in %.0f s", time.perf_counter() - start)
        powers = values.clip(0) ** self.diffusion_time_
        self.strength_ = float((powers ** 2).sum() / max(powers.sum(), 1e-12))
        self.memory_.eigenvectors = torch.from_numpy(np.ascontiguousarray(vectors))
        self.memory_.eigenvalues = torch.from_numpy(values)
        self.memory_.degrees = torch.from_numpy(degrees)
        return self

    def _graph(self, corpus: np.ndarray) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
        """The symmetric n_neighbors graph of the stored vectors (self-links dropped, weights = cosine floored at 0),
        and each stored vector's cosine to its n_neighbors-th neighbour (the corpus's own similarity scale)."""
        n = len(corpus)
        # each vector finds itself too; above the exact-search size, the graph's own HNSW breadth
        found, cosines = self._search(corpus, int(self.n_neighbors) + 1, ef=GRAPH_EF_SEARCH)
        kth = np.sort(cosines, axis=1)[:, 0]  # the (n_neighbors + 1)-th including itself
        cosines = np.where(found == np.arange(n)[:, None], 0.0, np.maximum(cosines, 0.0))
        rows = np.repeat(np.arange(n), found.shape[1])
        graph = scipy.sparse.csr_matrix((cosines.ravel(), (rows, found.ravel())), shape=(n, n))
        return graph.maximum(graph.T).tocsr(), kth

    def _fitted_state(self) -> dict:
        return {**super()._fitted_state(), "diffusion_time_": self.diffusion_time_, "strength_": self.strength_}

    def _rebuild(self, state: dict) -> None:
        super()._rebuild(state)
        self.diffusion_time_ = float(state.get("diffusion_time_", 0.0))  # folders saved before it existed: none
        self.strength_ = float(state.get("strength_", 1.0))  # ... and the appended part at full length

    def transform(self, X, y=None):
        """``[x̂, spectral coordinates]`` normalised, (n, n_features + n_components_) float32."""
        return super().transform(X)  # validates, normalises and calls _tune_block on blocks of batch_size rows

    def _tune_block(self, x: np.ndarray) -> np.ndarray:
        neighbours, similarity = self._search(x)
        close = similarity >= self.min_similarity_
        weights = np.where(close, np.maximum(similarity, 0.0), 0.0)
        degrees = self.memory_.degrees.numpy()
        own_degree = weights.sum(axis=1, keepdims=True)
        weights = weights / np.sqrt(np.maximum(own_degree * degrees[neighbours], 1e-24))
        eigenvectors, eigenvalues = self.memory_.eigenvectors.numpy(), self.memory_.eigenvalues.numpy()
        # Nystrom (divide by lambda, floored) and diffusion weighting (lambda ** t) in one per-component factor
        scale = eigenvalues.clip(0) ** self.diffusion_time_ / np.maximum(eigenvalues, 1e-3)
        coordinates = np.einsum("nk,nkm->nm", weights, eigenvectors[neighbours]) * scale
        length = np.linalg.norm(coordinates, axis=1, keepdims=True)
        coordinates = coordinates / np.maximum(length, 1e-12) * (length > 0)
        out = np.hstack([x, self.weight * self.strength_ * close.mean(axis=1, keepdims=True) * coordinates])
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


FILTER_POWER = 4  # ARPACK runs on ((A + I) / 2) ** 4; see _leading_eigenpairs


def _component_vectors(graph: scipy.sparse.spmatrix, degrees: np.ndarray, m: int) -> np.ndarray:
    """Where the graph falls apart, the exact eigenvectors of eigenvalue 1 of its normalised adjacency: sqrt(degree)
    on each connected component, zero elsewhere, unit length; the ``m`` largest components first (n x c, c <= m).
    None for a connected graph.

    A component is what a repeated text makes (eleven copies are each other's ten nearest neighbours, linked to
    nothing else), and every component adds one more eigenvalue exactly 1. A Krylov solver such as ARPACK finds only
    some copies of a repeated eigenvalue (9 of 12 on twelve planted groups, with or without the filter), so these are
    computed, not searched for."""
    import scipy.sparse.csgraph

    count, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    if count < 2:
        return None
    weight = np.bincount(labels, weights=degrees, minlength=count)
    order = [c for c in np.argsort(-np.bincount(labels, minlength=count), kind="stable") if weight[c] > 0][:m]
    root = np.sqrt(np.maximum(degrees, 0.0))
    columns = np.zeros((len(labels), len(order)))
    for j, c in enumerate(order):
        inside = labels == c
        columns[inside, j] = root[inside] / np.sqrt(weight[c])
    return columns


FILTER_POWER = 4  # ARPACK runs on ((A + I) / 2) ** 4; see _leading_eigenpairs


def _leading_eigenpairs(matrix: scipy.sparse.spmatrix, m: int,
                        known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The m largest eigenvalues (descending) of a symmetric matrix with spectrum in [-1, 1] (a normalised adjacency)
    and their eigenvectors as columns. ``known``: orthonormal eigenvectors of eigenvalue 1 already in hand (the
    components, :func:`_component_vectors`); they come first and the rest are found orthogonal to them.

    Above DENSE_EIGEN_BELOW rows: ARPACK (full precision, fixed-seed start vector, so a refit gives the same
    eigenvectors) on the polynomial ``((A + I) / 2) ** FILTER_POWER``, which has the same eigenvectors in the same order
    (the map is increasing on [-1, 1]) but spreads the leading eigenvalues, which sit within 0.02 of 1 on a
    sentence corpus, apart relative to the rest: ARPACK needs 961 instead of 1,673 steps, and its steps (the
    reorthogonalisation of a 200,000 x 129 basis, memory-bound) are what cost, not the sparse products. The
    eigenvalues returned are those of A itself (Rayleigh quotients). 200,000 MiniLM vectors: 27.4 s instead of 33.9,
    the subspace within 0.23 degrees of plain ARPACK's on the same graph (bench/spectral_fit.py).
    """
    n = matrix.shape[0]
    known = np.zeros((n, 0), dtype=matrix.dtype) if known is None else known.astype(matrix.dtype)
    wanted = m - known.shape[1]
    if wanted <= 0:
        return np.ones(m), known[:, :m]

    def without_known(x):  # (nothing to remove on a connected graph: x as it is, in the matrix's own dtype)
        return x - known @ (known.T @ x) if known.shape[1] else x

    if n < DENSE_EIGEN_BELOW or m >= n - 1:
        dense = matrix.toarray()
        if known.shape[1]:  # the known space goes to 0, below every eigenvalue the rest can have but -1
            dense = without_known(without_known(dense).T).T
        values, vectors = np.linalg.eigh(dense)
        if known.shape[1]:
            outside = np.linalg.norm(known.T @ vectors, axis=0) < 0.5  # drop what is left of the known space
            values, vectors = values[outside], vectors[:, outside]
        order = np.argsort(-values)[:wanted]
        values, vectors = values[order], vectors[:, order]
    else:
        matrix = matrix.tocsr()

        def filtered(x):
            x = without_known(x)
            for _ in range(FILTER_POWER):
                x = 0.5 * (matrix @ x + x)
            return without_known(x)

        operator = scipy.sparse.linalg.LinearOperator(matrix.shape, matvec=filtered, dtype=matrix.dtype)
        start = without_known(np.random.default_rng(0).standard_normal(n).astype(matrix.dtype))
        _, vectors = scipy.sparse.linalg.eigsh(operator, k=wanted, which="LA", v0=start)
        values = np.einsum("ij,ij->j", vectors, matrix @ vectors)
        order = np.argsort(-values)
        values, vectors = values[order], vectors[:, order]
    return np.concatenate([np.ones(known.shape[1]), values]), np.hstack([known, vectors])
