"""Assembling a before/after report from two spaces of the same texts: the metrics with verdicts, the maps, the
per-group silhouettes, the training curves and the nearest neighbours; then writing it as HTML or Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embtune.atomic import atomic_write_text
from embtune.data.corpus import Corpus
from embtune.data.vectors import l2_normalize, nearest_neighbors
from embtune.evaluation.metrics import Metrics, evaluate_vectors
from embtune.report.html import Figure, ReportData, render_html, render_markdown

REPORT_SAMPLE = 3000  # texts drawn (fixed seed) for maps, silhouettes and neighbours
RECORD_KEYS = ("objective", "method", "steps", "kept_step", "stopped", "learning_rate", "batch_size", "n_train", "n_fit")


@dataclass
class ReportResult:
    output: Path
    before: Metrics
    after: Metrics
    data: Any


@dataclass
class Side:
    """One space of the report: its name and its vectors of the sampled texts."""

    name: str
    vectors: np.ndarray


def report_sample(data: Corpus, seed: int) -> tuple[list, np.ndarray | None]:
    """(texts, labels or None) of the fixed-seed sample a report shows (at most REPORT_SAMPLE)."""
    pick = np.sort(np.random.default_rng(seed).permutation(len(data))[:REPORT_SAMPLE])
    labels = np.asarray(data.labels)[pick] if data.labels is not None else None
    return [data.texts[i] for i in pick], labels


def _figures(texts, labels, before: Side, after: Side, before_m: Metrics, record, projection: str, seed: int):
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_samples

    from embtune.report.plots import project_2d, scatter_pair, silhouette_bars, training_curves

    k = before_m.info["k"]
    groups = labels if labels is not None else KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(
        l2_normalize(before.vectors))
    coloured_by = "label" if labels is not None else f"KMeans cluster (k={k}, on the 'before' space)"
    before_xy, method = project_2d(l2_normalize(before.vectors), projection, seed)
    after_xy, _ = project_2d(l2_normalize(after.vectors), projection, seed)
    figures = [Figure(f"Map of the space ({method})",
                      scatter_pair(before_xy, after_xy, groups, title=f"coloured by {coloured_by}", method=method),
                      f"{len(texts)} texts projected to 2-D, coloured by {coloured_by}. Tighter, better separated colours "
                      "mean a space that keeps those groups apart; 2-D maps distort, so read them with the table.")]
    names = np.unique(groups)
    if 1 < len(names) < len(texts):
        per = [silhouette_samples(l2_normalize(x), groups, metric="cosine") for x in (before.vectors, after.vectors)]
        means = [np.array([s[groups == g].mean() for g in names]) for s in per]
        figures.append(Figure("Silhouette per group",
                              silhouette_bars(*means, title=f"mean silhouette per {coloured_by.split(' (')[0]}"),
                              "For each group, how much closer its members sit to each other than to the nearest other "
                              "group (cosine), before (grey) and after (blue)."))
    if record and (record.get("losses") or record.get("history")):
        figures.append(Figure("Training", training_curves(record.get("losses", []), record.get("history", []),
                                                          title=f"{after.name}", unit=record.get("loss_unit", "step")),
                              "Loss per step and the metrics watched on the held-out slice during training."))
    return figures


def _neighbours(texts, before: Side, after: Side, seed: int) -> list[dict[str, Any]]:
    """The 5 nearest neighbours of 10 sample texts, before and after."""
    queries = np.random.default_rng(seed + 1).permutation(len(texts))[:10]
    nb_before, nb_after = nearest_neighbors(before.vectors, 5), nearest_neighbors(after.vectors, 5)
    return [{"query": texts[q], "before": [texts[j] for j in nb_before[q]], "after": [texts[j] for j in nb_after[q]]}
            for q in queries]


def build_report(data: Corpus, texts, labels, before: Side, after: Side, *, record=None, k: int | None = None,
                 seeds: int = 5, seed: int = 0, projection: str = "pca", title: str | None = None,
                 notes: list[str] | None = None, tables: list | None = None) -> ReportData:
    """The report of ``before`` vs ``after`` on the sampled ``texts`` (and ``labels``) of ``data``; ``record`` is the
    training summary of ``after`` when it came from the trainer or a tuner."""
    before_m = evaluate_vectors(before.vectors, labels=labels, k=k, seeds=seeds, seed=seed)
    after_m = evaluate_vectors(after.vectors, labels=labels, k=before_m.info.get("k") or k, seeds=seeds, seed=seed)
    config = {"before": before.name, "after": after.name, "corpus": str(data.path or "texts"),
              "texts in the corpus": len(data), "texts in this report": len(texts), "KMeans k": before_m.info.get("k"),
              "KMeans seeds": seeds, "seed": seed}
    config.update({f"training: {key}": record[key] for key in RECORD_KEYS if record and key in record})
    notes = list(notes or [])
    if labels is not None:
        notes.append("Labels are used here only to score and colour: label metrics of probes are on a held-out split.")
    return ReportData(
        title=title or f"embtune report: {before.name} → {after.name}", before_name=before.name, after_name=after.name,
        corpus=Path(str(data.path)).name if data.path else "texts", n_texts=len(data), n_labels=data.n_labels,
        before=before_m, after=after_m, neighbours=_neighbours(texts, before, after, seed), config=config,
        figures=_figures(texts, labels, before, after, before_m, record, projection, seed), notes=notes,
        tables=list(tables or []),
    )


def write_report(report_data: ReportData, output: Path) -> ReportResult:
    """Write the report as Markdown (``output`` ends in .md) or self-contained HTML, atomically."""
    rendered = render_markdown(report_data) if output.suffix.lower() == ".md" else render_html(report_data)
    atomic_write_text(output, rendered)
    return ReportResult(output=output, before=report_data.before, after=report_data.after, data=report_data)
