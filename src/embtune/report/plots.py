"""Figures for the before/after report, drawn with matplotlib and returned as PNG bytes (no files, no display)."""

from __future__ import annotations

import io
import logging

import numpy as np

log = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display, ever
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates by UMAP (when umap-learn is installed and asked for) or PCA; returns (xy, method used)."""
    if method == "umap":
        try:
            import umap

            return umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(vectors), "UMAP"
        except ImportError:
            log.info("umap-learn is not installed (pip install 'embtune[umap]'); using PCA for the maps")
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(vectors), "PCA"


def _colours(groups: np.ndarray):
    names, codes = np.unique(groups, return_inverse=True)
    cmap = _pyplot().get_cmap("tab20" if len(names) > 10 else "tab10")
    return codes % cmap.N, cmap, len(names)


def scatter_pair(before_xy: np.ndarray, after_xy: np.ndarray, groups: np.ndarray, *, title: str, method: str) -> bytes:
    """Two maps side by side, points coloured by ``groups`` (labels or KMeans clusters)."""
    plt = _pyplot()
    codes, cmap, n = _colours(groups)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, xy, name in zip(axes, (before_xy, after_xy), ("before", "after")):
        ax.scatter(xy[:, 0], xy[:, 1], c=codes, cmap=cmap, s=6, alpha=0.75, linewidths=0, vmin=0, vmax=cmap.N - 1)
        ax.set_title(f"{name} ({method})")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title} ({n} groups; colours repeat above {cmap.N})" if n > cmap.N else title)
    return _png(fig)


def silhouette_bars(before: np.ndarray, after: np.ndarray, *, title: str) -> bytes:
    """Per-cluster mean silhouette before and after, clusters sorted by their 'before' value."""
    plt = _pyplot()
    order = np.argsort(before)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    x = np.arange(len(order))
    ax.bar(x - 0.2, before[order], width=0.4, label="before", color="#9aa5b1")
    ax.bar(x + 0.2, after[order], width=0.4, label="after", color="#2f7ed8")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("cluster (sorted by silhouette before)")
    ax.set_ylabel("mean silhouette")
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def training_curves(losses: list[list[float]], history: list[dict], *, title: str, unit: str = "step") -> bytes:
    """Loss per step, and each watched metric per evaluation."""
    plt = _pyplot()
    names = [n for n in ("silhouette", "v_measure", "sts_spearman", "effective_rank", "uniformity", "alignment")
             if any(n in h.get("metrics", {}) for h in history)]
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(3.6 * (1 + len(names)), 3.2), squeeze=False)
    if losses:
        steps, values = zip(*losses)
        axes[0, 0].plot(steps, values, color="#2f7ed8", linewidth=1)
    axes[0, 0].set_title("training loss")
    axes[0, 0].set_xlabel(unit)
    for ax, name in zip(axes[0, 1:], names):
        points = [(h["step"], h["metrics"][name]) for h in history if name in h.get("metrics", {})]
        ax.plot(*zip(*points), marker="o", color="#d8742f")
        ax.set_title(name)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)
