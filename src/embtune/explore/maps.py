"""The explorer's 2-D maps: PCA (default) or UMAP (``embtune[umap]``), scaled to [-1, 1] and cached on disk.

A map is keyed by the vectors' bytes, the method, the seed and the layout it started from, so reopening a corpus (or
a second `explore` of the same one) reads the map instead of recomputing it: UMAP of 100,000 vectors takes minutes
on two cores, PCA about a second. An "after" map starts from the "before" map (UMAP's ``init``; PCA's axes are
flipped to match), so a group that did not move stays where the eye left it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)
METHODS = ("pca", "umap")
UMAP_MISSING = "--projection umap needs umap-learn: pip install 'embtune[umap]' (or use --projection pca)"


def check_method(method: str) -> None:
    """Refuse a projection that is not pca / umap, or umap without umap-learn installed (found without importing
    it: umap's import is seconds)."""
    import importlib.util

    if method not in METHODS:
        raise EmbtuneError(f"--projection {method!r}: use pca or umap")
    if method == "umap" and importlib.util.find_spec("umap") is None:
        raise EmbtuneError(UMAP_MISSING)


def maps_dir() -> Path:
    from embtune.encoders.cache import default_cache_dir

    return default_cache_dir() / "maps"


def _key(vectors: np.ndarray, method: str, seed: int, init: np.ndarray | None) -> str:
    digest = hashlib.sha1(f"{method}:{seed}:{vectors.shape}:{vectors.dtype}".encode())
    digest.update(np.ascontiguousarray(vectors).data)
    if init is not None:
        digest.update(np.ascontiguousarray(init, dtype=np.float32).data)
    return digest.hexdigest()


def _pca(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    solver = "randomized" if len(x) > 5000 else "full"
    return PCA(n_components=2, svd_solver=solver, random_state=seed).fit_transform(x - x.mean(axis=0))


def _umap(x: np.ndarray, seed: int, init: np.ndarray | None) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise EmbtuneError(UMAP_MISSING) from None
    n_neighbors = int(min(15, max(2, len(x) - 1)))
    start = init if init is not None and len(init) == len(x) else "spectral"
    if len(x) <= n_neighbors + 2:  # too few points for UMAP's spectral start: a random one
        start = "random"
    return umap.UMAP(n_components=2, n_neighbors=n_neighbors, metric="cosine", init=start, random_state=seed,
                     n_jobs=1).fit_transform(x)


def _scaled(xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    xy = xy - xy.mean(axis=0)
    return (xy / max(float(np.abs(xy).max()), 1e-12)).astype(np.float32)


def project(vectors: np.ndarray, method: str = "pca", *, seed: int = 0, init: np.ndarray | None = None,
            cache: bool = True) -> np.ndarray:
    """The (n, 2) float32 map of ``vectors`` in [-1, 1]. ``init``: the map this one should line up with (the before
    map, for an after map). ``cache``: read / write the map under the embtune cache folder (``maps/``)."""
    check_method(method)
    x = np.asarray(vectors, dtype=np.float32)
    if len(x) < 3:  # nothing to project: a line of points
        return np.stack([np.linspace(-1, 1, len(x)), np.zeros(len(x))], axis=1).astype(np.float32)
    path = maps_dir() / f"{_key(x, method, seed, init)}.npy" if cache else None
    if path is not None and path.is_file():
        try:
            xy = np.load(path, allow_pickle=False)
            if xy.shape == (len(x), 2):
                return xy.astype(np.float32)
        except (OSError, ValueError):
            pass  # a damaged cache file: computed again and replaced below
    start = time.perf_counter()
    if method == "umap":
        log.info("explore: UMAP map of %d items (computed once, then read from %s)", len(x), maps_dir())
        xy = _scaled(_umap(x, seed, init))
    else:
        xy = _scaled(_pca(x, seed))
        if init is not None and len(init) == len(x):  # PCA's axes have no sign: match the map it sits beside
            signs = np.sign(np.sum(xy * np.asarray(init, dtype=np.float32), axis=0))
            xy = xy * np.where(signs == 0, 1, signs).astype(np.float32)
    log.debug("explore: %s map of %d items in %.1f s", method, len(x), time.perf_counter() - start)
    if path is not None:
        from embtune.atomic import write_cache

        write_cache(path, lambda f: np.save(f, xy, allow_pickle=False), "the explorer's map", level=logging.WARNING)
    return xy
