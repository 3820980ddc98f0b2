"""Writing vectors to a .npy file one block at a time, so memory does not grow with the corpus.

The file is written under a temp name with a fixed-size header that is filled in with the final row count on close, then
renamed into place: readers never see a half-written file, and ``np.load(path, mmap_mode="r")`` opens the result.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from embtune.atomic import atomic_open
from embtune.errors import EmbtuneError

_MAGIC = b"\x93NUMPY\x01\x00"
_HEADER_BYTES = 128  # magic (8) + length (2) + dict; room for any (rows, dim) shape, and 64-byte aligned


_FLOAT32_SAFE = 1e18  # a float32 row with entries beyond this may overflow when squared (sqrt(float32 max) ~ 1.8e19)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32.

    Any finite row is normalised correctly, however large: a row whose squared norm would overflow float32 (or whose
    float64 values would not fit float32 at all) is first divided by its largest absolute entry. Rows of ordinary
    size take the plain float32 path, so their result is unchanged by this guard. Non-finite rows stay non-finite:
    callers that take vectors from users reject them first (:func:`check_vector_rows`).
    """
    vectors = np.asarray(vectors)
    if vectors.dtype.kind == "f" and vectors.dtype.itemsize > 4 and vectors.size:
        peak = np.max(np.abs(vectors), axis=1)
        huge = np.isfinite(peak) & (peak > _FLOAT32_SAFE)
        if huge.any():
            vectors = vectors.copy()
            vectors[huge] /= peak[huge, None]
    vectors = np.asarray(vectors, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    overflowed = ~np.isfinite(norms[:, 0]) & np.isfinite(vectors).all(axis=1) if vectors.size else np.zeros(0, bool)
    if overflowed.any():
        rows = vectors[overflowed].astype(np.float64)
        rows /= np.max(np.abs(rows), axis=1, keepdims=True)
        vectors = vectors.copy()
        vectors[overflowed] = rows.astype(np.float32)
        norms = norms.copy()
        norms[overflowed] = np.linalg.norm(vectors[overflowed], axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def check_vector_rows(vectors: np.ndarray, source: str) -> None:
    """Refuse vectors with rows that cannot be normalised: non-finite values, or all zeros (no direction).

    The message counts them and names the first few rows (1-based), so the user can find them in ``source``.
    """
    bad_finite = ~np.isfinite(vectors).all(axis=1)
    zero = ~bad_finite & ~np.any(vectors != 0, axis=1)
    problems = []
    for mask, what in ((bad_finite, "NaN or infinite values"), (zero, "only zeros (no direction)")):
        count = int(mask.sum())
        if count:
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(mask)[:5]) + (", ..." if count > 5 else "")
            problems.append(f"{count} row(s) with {what} (rows {rows})")
    if problems:
        raise EmbtuneError(f"{source}: {'; '.join(problems)} of {len(vectors)}; re-encode those texts or drop them from "
                           "both the vectors and the corpus")


def npy_header(rows: int, dim: int, dtype=np.float32) -> bytes:
    dtype = np.dtype(dtype)
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, dim)})
    body_len = _HEADER_BYTES - len(_MAGIC) - 2
    body = text.ljust(body_len - 1).encode("latin1") + b"\n"
    if len(body) != body_len:
        raise ValueError(f"shape {(rows, dim)} does not fit a {_HEADER_BYTES}-byte .npy header")
    return _MAGIC + struct.pack("<H", body_len) + body


class NpyStreamWriter:
    """Append 2-D blocks of a fixed width to a .npy file; the file appears at ``path`` only on a clean close.

    >>> with NpyStreamWriter("vectors.npy", dim=384) as out:
    ...     out.write(block)            # (n_i, 384) float32
    >>> np.load("vectors.npy", mmap_mode="r").shape
    """

    def __init__(self, path: str | Path, dim: int, dtype=np.float32):
        self.path = Path(path)
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._opened = atomic_open(self.path, "wb")
        self._file = self._opened.__enter__()
        self._file.write(npy_header(0, self.dim, self.dtype))

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise ValueError(f"expected a (n, {self.dim}) block, got shape {block.shape}")
        self._file.write(block.tobytes())
        self.rows += block.shape[0]

    def close(self) -> Path:
        self._file.seek(0)
        self._file.write(npy_header(self.rows, self.dim, self.dtype))
        self._opened.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        self._opened.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> NpyStreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


EXACT_NEIGHBORS_BELOW = 50_000  # up to this many vectors an exact search is fast enough; above it, faiss HNSW


def nearest_neighbors(vectors: np.ndarray, k: int, *, exact_below: int = EXACT_NEIGHBORS_BELOW, chunk: int = 2048) -> np.ndarray:
    """Indices (n, k) of each row's ``k`` nearest other rows by cosine, nearest first.

    Exact (chunked matrix products) for up to ``exact_below`` rows; above that an approximate HNSW index from faiss,
    which keeps memory and time near-linear for millions of rows.
    """
    x = l2_normalize(vectors)
    n = len(x)
    if n < 2:
        raise ValueError("need at least two vectors to find neighbours")
    k = min(int(k), n - 1)
    if n >= exact_below:
        return _faiss_neighbors(x, k)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        sims = x[start : start + chunk] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # not itself
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[start : start + chunk] = np.take_along_axis(top, order, axis=1)
    return out


# HNSW links per node. On 200,000 all-MiniLM-L6-v2 sentence vectors (bench/spectral_fit.py's corpus), 10-NN recall
# against the exact search at efSearch 64: M=16 0.963, M=24 0.986, M=32 0.985; build 9.1 / 13.4 / 14.7 s.
HNSW_LINKS = 24
GRAPH_EF_SEARCH = 32  # a graph over the indexed rows themselves: recall 0.978 (M=24), 40 % less search time than 64


def hnsw_index(vectors: np.ndarray):
    """A faiss HNSW inner-product index over ``vectors`` (unit rows: inner product = cosine); query it with
    :func:`hnsw_search`."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def hnsw_search(index, queries: np.ndarray, k: int, *, ef: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Inner products and ids (n, k) of each query's ``k`` nearest indexed rows; an id of -1 marks a row not found.
    ``ef`` is the search breadth (at least 2k)."""
    index.hnsw.efSearch = max(ef, 2 * k)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def _faiss_neighbors(x: np.ndarray, k: int) -> np.ndarray:
    _, found = hnsw_search(hnsw_index(x), x, k + 1)
    out = np.empty((len(x), k), dtype=np.int64)
    for i, row in enumerate(found):
        row = [j for j in row if j != i and j >= 0][:k]
        if len(row) < k:  # rare with HNSW: pad with the nearest found
            row = (row + row[:1] * k)[:k] if row else [(i + 1) % len(x)] * k
        out[i] = row
    return out
