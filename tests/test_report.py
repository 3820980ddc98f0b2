"""The before/after report: a self-contained HTML file whose figures decode in a real browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import embtune


@pytest.fixture(scope="module")
def report_html(tiny_model, demo_rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    corpus = folder / "c.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in demo_rows[:300]))
    embtune.tune(corpus, method="infonce", positives="neighbors", model=str(tiny_model), output=folder / "tuner",
                 epochs=3, seeds=2, show_progress=False)
    return folder / "tuner" / "report.html"


def test_report_is_self_contained_with_decodable_figures(report_html):
    from PIL import Image
    import io

    page = report_html.read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) >= 3  # map, per-group silhouette, training curve
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 100
    assert "Nearest neighbours" in page


def test_report_verdicts_follow_the_metrics(tiny_model, report_html, tmp_path):
    """Each metric row's verdict is the one the before/after figures call for, computed here, not read off the page."""
    from embtune.report.html import verdict

    corpus = report_html.parent.parent / "c.jsonl"
    result = embtune.api.report(corpus, before=str(tiny_model), after=report_html.parent, output=tmp_path / "r.html",
                                seeds=2)
    page = result.output.read_text()
    names = [n for n in ("v_measure", "silhouette", "knn_accuracy", "effective_rank") if n in result.before.values]
    assert len(names) == 4
    for name in names:
        css, words = verdict(result.before, result.after, name)
        row = re.search(rf"<tr><td><code>{name}</code></td>(.*?)</tr>", page).group(1)
        assert f"<td class='{css}'>{words}</td>" in row, (name, row)
    # and the rule itself: a change inside twice the seed spread is noise, outside it has a direction
    b, a = result.before, result.after
    delta = a.values["v_measure"] - b.values["v_measure"]
    noise = 2 * max(b.std.get("v_measure", 0.0), a.std.get("v_measure", 0.0))
    assert (verdict(b, a, "v_measure")[0] == "same") == (abs(delta) <= noise or delta == 0)


def test_report_renders_in_headless_chromium(report_html, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", report_html.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-images="(\d+)" data-images-ok="(\d+)"', dom)
    assert found and int(found.group(1)) >= 3 and found.group(1) == found.group(2), dom[:500]
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1280,2000", f"--screenshot={shot}", report_html.as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2000, 1280) and pixels.std() > 10  # a page was drawn, not a blank screen
