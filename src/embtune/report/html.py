"""The before/after report as one self-contained HTML file (images inline, no network) and as Markdown."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any

from embtune.evaluation.metrics import METRIC_INFO, Metrics
from embtune.report.tables import GROUP_ORDER, GROUP_TITLES, describe_setup

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1180px;color:#1f2933;
padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
.sub{color:#52606d;margin-top:0}table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem}
th,td{padding:.35rem .7rem;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f5f7fa}
.better{color:#0b7a3e;font-weight:600}.worse{color:#b42318;font-weight:600}.same{color:#7b8794}
.group td{background:#f5f7fa;font-weight:600}img{max-width:100%;border:1px solid #e4e7eb;margin:.5rem 0}
.changed{background:#fff8e1}.note{color:#52606d;font-size:.9rem}.broken{color:#b42318;font-weight:600}
code{background:#f5f7fa;padding:0 .25rem}
"""

# Marks any figure that failed to decode, so a broken report says so instead of showing an empty box.
CHECK_IMAGES = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images), ok = 0;
  images.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { ok += 1; return; }
    var warning = document.createElement('p');
    warning.className = 'broken';
    warning.textContent = 'This figure could not be displayed: ' + img.alt;
    img.insertAdjacentElement('afterend', warning);
  });
  document.body.setAttribute('data-images', images.length);
  document.body.setAttribute('data-images-ok', ok);
});
"""


@dataclass
class Figure:
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class ReportData:
    """Everything a report shows; built by embtune.api.report, rendered here."""

    title: str
    before_name: str
    after_name: str
    corpus: str
    n_texts: int
    n_labels: int
    before: Metrics
    after: Metrics
    figures: list[Figure] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)  # {"query", "before": [...], "after": [...]}
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)  # extra tables shown after the metrics (e.g. auto's candidates)


def verdict(before: Metrics, after: Metrics, name: str) -> tuple[str, str]:
    """(css class, plain words) for the change of one metric; within 2x the KMeans-seed spread counts as noise."""
    delta = after.values[name] - before.values[name]
    noise = 2 * max(before.std.get(name, 0.0), after.std.get(name, 0.0))
    info = METRIC_INFO[name]
    if abs(delta) <= noise or delta == 0:
        return "same", "no change beyond noise"
    better = delta > 0 if info.higher_is_better else delta < 0
    direction = "higher" if delta > 0 else "lower"
    return ("better", f"{direction}: better") if better else ("worse", f"{direction}: worse")


def _fmt(metrics: Metrics, name: str) -> str:
    value = metrics.values[name]
    text = f"{value:.1f}" if name == "calinski_harabasz" else f"{value:.2f}" if name == "effective_rank" else f"{value:.3f}"
    if name in metrics.std and len(metrics.info.get("seeds", [])) > 1:
        text += f" ± {metrics.std[name]:.3f}"
    return text


def _metric_rows(data: ReportData) -> list[tuple[str, list[str], str]]:
    rows = []
    for group in GROUP_ORDER:
        names = [n for n, i in METRIC_INFO.items() if i.group == group and n in data.before.values and n in data.after.values]
        if not names:
            continue
        rows.append(("group", [GROUP_TITLES[group]], ""))
        for name in names:
            css, words = verdict(data.before, data.after, name)
            info = METRIC_INFO[name]
            delta = data.after.values[name] - data.before.values[name]
            better = "higher" if info.higher_is_better else "lower"
            rows.append(("metric", [name, _fmt(data.before, name), _fmt(data.after, name), f"{delta:+.3f}", words,
                                    f"{info.meaning}; {better} is better"], css))
    return rows


def render_html(data: ReportData) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(data.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(data.title)}</h1>",
        f"<p class='sub'>before: <b>{e(data.before_name)}</b> &nbsp;→&nbsp; after: <b>{e(data.after_name)}</b> &nbsp;·&nbsp; "
        f"{e(data.corpus)}: {data.n_texts} texts" + (f", {data.n_labels} labels" if data.n_labels else "") + "</p>",
    ]
    for note in data.notes:
        parts.append(f"<p class='note'>{e(note)}</p>")
    parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>before</th><th>after</th><th>change</th><th>verdict</th>"
                 "<th>what it means</th></tr>")
    for kind, cells, css in _metric_rows(data):
        if kind == "group":
            parts.append(f"<tr class='group'><td colspan='6'>{e(cells[0])}</td></tr>")
        else:
            name, before, after, delta, words, meaning = cells
            parts.append(f"<tr><td><code>{e(name)}</code></td><td class='num'>{e(before)}</td><td class='num'>{e(after)}</td>"
                         f"<td class='num {css}'>{e(delta)}</td><td class='{css}'>{e(words)}</td><td>{e(meaning)}</td></tr>")
    parts.append(f"</table><p class='note'>{e(describe_setup(data.before)).replace(chr(10), '<br>')}</p>")
    for table in data.tables:
        parts.append(f"<h2>{e(table.title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in table.rows]
        parts.append("</table>" + (f"<p class='note'>{e(table.caption)}</p>" if table.caption else ""))
    for figure in data.figures:
        encoded = base64.b64encode(figure.png).decode("ascii")
        parts.append(f"<h2>{e(figure.title)}</h2><img alt='{e(figure.title)}' src='data:image/png;base64,{encoded}'>")
        if figure.caption:
            parts.append(f"<p class='note'>{e(figure.caption)}</p>")
    if data.neighbours:
        parts.append("<h2>Nearest neighbours of sample texts</h2><p class='note'>The 5 nearest texts before and after; "
                     "highlighted ones are new after the change.</p><table><tr><th>query</th><th>before</th>"
                     "<th>after</th></tr>")
        for row in data.neighbours:
            old = set(row["before"])
            after_cells = "".join(f"<div class='{'changed' if t not in old else ''}'>{e(t)}</div>" for t in row["after"])
            before_cells = "".join(f"<div>{e(t)}</div>" for t in row["before"])
            parts.append(f"<tr><td><b>{e(row['query'])}</b></td><td>{before_cells}</td><td>{after_cells}</td></tr>")
        parts.append("</table>")
    if data.config:
        parts.append("<h2>Run and data</h2><table>")
        for key, value in data.config.items():
            parts.append(f"<tr><th>{e(str(key))}</th><td>{e(str(value))}</td></tr>")
        parts.append("</table>")
    parts.append(f"<p class='note'>Made by embtune. This file is self-contained: it loads nothing from the network."
                 f"</p><script>{CHECK_IMAGES}</script></body></html>")
    return "\n".join(parts)


def render_markdown(data: ReportData) -> str:
    lines = [f"# {data.title}", "", f"before: **{data.before_name}** → after: **{data.after_name}** · {data.corpus}: "
             f"{data.n_texts} texts" + (f", {data.n_labels} labels" if data.n_labels else ""), ""]
    lines += [f"> {note}" for note in data.notes]
    lines += ["", "| metric | before | after | change | verdict | what it means |", "|---|---|---|---|---|---|"]
    for kind, cells, _ in _metric_rows(data):
        lines.append(f"| **{cells[0]}** | | | | | |" if kind == "group" else "| " + " | ".join(cells) + " |")
    lines += ["", describe_setup(data.before).replace("\n", "; "), ""]
    for table in data.tables:
        lines += [f"## {table.title}", "", "| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table.rows]
        lines += ["", table.caption, ""] if table.caption else [""]
    for figure in data.figures:
        encoded = base64.b64encode(figure.png).decode("ascii")
        lines += [f"## {figure.title}", "", f"![{figure.title}](data:image/png;base64,{encoded})", "", figure.caption, ""]
    if data.neighbours:
        lines += ["## Nearest neighbours of sample texts", "", "| query | before | after |", "|---|---|---|"]
        for row in data.neighbours:
            lines.append(f"| {row['query']} | {'<br>'.join(row['before'])} | {'<br>'.join(row['after'])} |")
    if data.config:
        lines += ["", "## Run and data", ""] + [f"- {k}: {v}" for k, v in data.config.items()]
    return "\n".join(lines) + "\n"
