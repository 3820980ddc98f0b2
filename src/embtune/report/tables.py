"""Readable tables of metrics (rich), with each metric's direction and meaning."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from embtune.evaluation.metrics import METRIC_INFO, Metrics

GROUP_TITLES = {
    "labels": "with labels",
    "clusters": "clusters (no labels)",
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
    """How the numbers were made: k, seeds, what the probes were fitted and scored on."""
    info = metrics.info
    parts = []
    if info.get("k"):
        where = f" on the {info.get('n_clustered')} held-out texts" if info.get("clustered_on") == "test" else ""
        parts.append(f"KMeans k={info['k']} ({info.get('k_source', '')}){where}, {len(info.get('seeds', []))} seeds: mean ± std")
    if "probe_split" in info:
        parts.append(f"probes fit on {info.get('probe_train')} texts, scored on {info.get('probe_test')} ({info['probe_split']})")
    elif "probes_skipped" in info:
        parts.append(f"kNN / logistic-regression probes skipped: {info['probes_skipped']}")
    if "alignment_from" in info:
        parts.append(f"alignment: {info['alignment_from']}")
    return "\n".join(parts)


def metrics_table(metrics: Metrics, *, title: str | None = None) -> Table:
    """Metric | value (± std over KMeans seeds) | better (↑ higher, ↓ lower) | meaning, grouped by what each needs."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=describe_setup(metrics),
        caption_justify="left",
    )
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("better", justify="center", no_wrap=True)
    table.add_column("what it means", overflow="fold")
    for group in GROUP_ORDER:
        names = [n for n, i in METRIC_INFO.items() if i.group == group and n in metrics.values]
        if not names:
            continue
        table.add_row(Text(GROUP_TITLES[group], style="bold"), "", "", "", end_section=False)
        for name in names:
            info = METRIC_INFO[name]
            table.add_row(
                f"  {name}", format_value(metrics, name), "↑" if info.higher_is_better else "↓", info.meaning
            )
    return table


def _change(before: Metrics, after: Metrics, name: str) -> Text:
    """The signed change, green when better and red when worse; dim '≈' when within KMeans-seed noise."""
    delta = after.values[name] - before.values[name]
    digits = 1 if name == "calinski_harabasz" else 2 if name == "effective_rank" else 3
    noise = 2 * max(before.std.get(name, 0.0), after.std.get(name, 0.0))
    better = delta > 0 if METRIC_INFO[name].higher_is_better else delta < 0
    if name in before.std and abs(delta) <= noise:
        return Text(f"≈ {delta:+.{digits}f}", style="dim")
    if delta == 0:
        return Text(f"{delta:+.{digits}f}", style="dim")
    return Text(f"{delta:+.{digits}f}", style="green" if better else "red")


def comparison_table(before: Metrics, after: Metrics, *, title: str | None = None) -> Table:
    """Before | after | change for every metric both have; the change is coloured by direction (≈ within noise)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, caption=describe_setup(before),
                  caption_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("before", justify="right", no_wrap=True)
    table.add_column("after", justify="right", no_wrap=True)
    table.add_column("change", justify="right", no_wrap=True)
    table.add_column("better", justify="center", no_wrap=True)  # which direction is an improvement: ↑ higher, ↓ lower
    for group in GROUP_ORDER:
        names = [n for n, i in METRIC_INFO.items() if i.group == group and n in before.values and n in after.values]
        if not names:
            continue
        table.add_row(Text(GROUP_TITLES[group], style="bold"), "", "", "", "")
        for name in names:
            arrow = "↑" if METRIC_INFO[name].higher_is_better else "↓"
            table.add_row(
                f"  {name}", format_value(before, name), format_value(after, name), _change(before, after, name), arrow
            )
    return table
