"""Readable tables of metrics (rich), with each metric's direction and meaning."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from embtune.evaluate.metrics import METRIC_INFO, Metrics

GROUP_TITLES = {
    "labels": "with labels (held out)",
    "clusters": "clusters, no labels needed",
    "space": "shape of the space",
    "pairs": "pairs",
}
GROUP_ORDER = ("labels", "clusters", "space", "pairs")


def format_value(metrics: Metrics, name: str) -> str:
    value = metrics.values[name]
    digits = 1 if name == "calinski_harabasz" else 2 if name == "effective_rank" else 3
    text = f"{value:.{digits}f}"
    if name in metrics.std and len(metrics.info.get("seeds", [])) > 1:
        text += f" ± {metrics.std[name]:.{digits}f}"
    return text


def describe_setup(metrics: Metrics) -> str:
    """One line on how the numbers were made: k, seeds, split."""
    info = metrics.info
    parts = []
    if info.get("k"):
        parts.append(f"KMeans k={info['k']} ({info.get('k_source', '')}), {len(info.get('seeds', []))} seeds, mean ± std")
        if info.get("clustered_on") == "test":
            parts.append(f"clusters on the test set ({info.get('n_clustered')} texts)")
    if "probe_split" in info:
        parts.append(f"probes: train {info.get('probe_train')} / test {info.get('probe_test')} ({info['probe_split']})")
    if "alignment_from" in info:
        parts.append(f"alignment: {info['alignment_from']}")
    return "; ".join(parts)


def metrics_table(metrics: Metrics, *, title: str | None = None) -> Table:
    """Metric | value (± std over KMeans seeds) | better | meaning, grouped by what each metric needs."""
    table = Table(title=title, title_justify="left", show_lines=False, caption=describe_setup(metrics), caption_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better", justify="center")
    table.add_column("what it means", overflow="fold")
    for group in GROUP_ORDER:
        names = [n for n, i in METRIC_INFO.items() if i.group == group and n in metrics.values]
        if not names:
            continue
        table.add_row(Text(GROUP_TITLES[group], style="bold"), "", "", "", end_section=False)
        for name in names:
            info = METRIC_INFO[name]
            table.add_row(
                f"  {name}", format_value(metrics, name), "higher" if info.higher_is_better else "lower", info.meaning
            )
    return table
