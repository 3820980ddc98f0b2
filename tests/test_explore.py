"""`embtune explore`: the server enforces its token and serves the page's actions; in headless Chromium the map draws
every point, a selection fills the panel, labelling / undo / export round-trip, and a server killed with -9 comes
back with every label. Image corpora get thumbnails (made once, cached); maps (PCA, UMAP) are cached and an after map
lines up with its before map."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from embtune.explore.server import ExploreServer
from embtune.errors import EmbtuneError
from embtune.explore import maps, thumbnails
from embtune.explore.maps import project
from embtune.explore.session import ExploreSession, Space, open_session

WORDS = ["card stolen blocked", "refund late merchant", "atm cash withdrawal", "exchange rate currency"]


def small_session(tmp_path, n_per=40, source=None) -> ExploreSession:
    x = small_session_vectors(n_per)
    texts = [f"{WORDS[i // n_per]} {i}" for i in range(len(x))]
    return ExploreSession(texts, [Space("base", x, project(x))], tmp_path / "out", source=source)


@pytest.fixture()
def server(tmp_path):
    srv = ExploreServer(small_session(tmp_path))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(srv, path, body=None, token=True):
    host, port = srv.server_address[:2]
    request = urllib.request.Request(f"http://{host}:{port}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None)
    if token:
        request.add_header("X-Embtune-Token", srv.token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_every_request_needs_the_token_and_the_server_listens_on_localhost_only(server):
    assert server.server_address[0] == "127.0.0.1"
    for path in ("/", "/api/points", "/plotly.js", "/api/export?format=csv"):
        assert call(server, path, token=False)[0] == 403, path
    assert call(server, "/api/label", {"items": [1], "label": "x"}, token=False)[0] == 403
    status, page = call(server, f"/?token={server.token}", token=False)
    assert status == 200 and server.token.encode() in page and b"plotly.js" in page
    assert call(server, "/?token=wrong", token=False)[0] == 403
    assert not server.session.log.labels()  # the refused label never reached the log


def test_label_undo_redo_accept_and_export_through_the_api(server):
    # 38 and 39 were in the selection and taken out of it: the person says they are not "card"
    status, body = call(server, "/api/label", {"items": list(range(30)), "label": "card", "left_out": [38, 39]})
    assert status == 200 and len(json.loads(body)["labels"]) == 30
    call(server, "/api/label", {"items": list(range(40, 70)), "label": "refund"})
    state = json.loads(call(server, "/api/undo", {})[1])
    assert len(state["labels"]) == 30 and state["can_redo"]
    state = json.loads(call(server, "/api/redo", {})[1])
    assert len(state["labels"]) == 60
    shown = json.loads(call(server, "/api/texts", {"items": list(range(100))})[1])
    assert shown["count"] == 100 and len(shown["items"]) == 50 and shown["items"][0]["label"] == "card"
    accepted = json.loads(call(server, "/api/accept", {"threshold": 0.9})[1])
    labels = accepted["labels"]
    assert accepted["accepted"] > 0 and all(labels[str(i)][0] == "card" for i in range(30, 40) if str(i) in labels)
    assert {v[1] for k, v in labels.items() if int(k) in range(30, 40)} <= {"propagated"}
    guesses = json.loads(call(server, "/api/propagation")[1])
    assert "card" not in {g for i, g in zip(guesses["items"], guesses["labels"]) if i in (38, 39)}
    assert labels.get("38", [""])[0] != "card" and labels.get("39", [""])[0] != "card"
    status, exported = call(server, "/api/export?format=csv")
    rows = list(csv.DictReader(io.StringIO(exported.decode())))
    assert status == 200 and len(rows) == 160 and set(rows[0]) == {"text", "label", "label_source", "confidence"}
    assert rows[0]["label"] == "card" and rows[0]["label_source"] == "manual" and rows[150]["label"] in ("", "card", "refund")
    assert (server.session.output / "labels.csv").is_file()
    found = json.loads(call(server, "/api/search?q=" + "atm%20cash")[1])
    assert found == list(range(80, 120))
    clusters = json.loads(call(server, "/api/clusters")[1])
    assert clusters and all(c["size"] == len(c["members"]) and 0 <= c["cohesion"] <= 1 for c in clusters)
    close_knit = [c["size"] * c["cohesion"] for c in clusters]
    assert close_knit == sorted(close_knit, reverse=True)  # the page offers the most close-knit members first
    assert not set(m for c in clusters for m in c["members"]) & {int(k) for k in labels}  # labelled items left out
    for bad in ({"items": [999], "label": "x"}, {"items": [1], "label": " "}, {"items": 3, "label": "x"},
                {"items": [1], "label": "x", "left_out": "2"}, {"items": [1], "label": "x", "left_out": [2.5]}):
        status, body = call(server, "/api/label", bad)
        assert status == 400 and json.loads(body)["error"]
        assert "left_out" in json.loads(body)["error"] if "left_out" in bad else "left_out" not in json.loads(body)["error"]
    assert call(server, "/api/search?q=(", None)[0] == 400


def test_the_groups_are_computed_once_per_label_state_and_again_after_a_label(tmp_path, monkeypatch):
    import embtune.explore.session as session_module

    session = small_session(tmp_path, n_per=400)  # 1,600 texts: 32 groups, more than the 30 the page shows
    assert session.prepare() >= 0
    first = session.clusters()
    assert len(first) == 30
    calls = []
    real = session_module.suggest_clusters
    monkeypatch.setattr(session_module, "suggest_clusters", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert session.clusters() == first and session.clusters(top=2) == first[:2] and not calls  # from the first time
    every = session.clusters(top=1000)  # every group was kept, not only those the page shows
    assert len(every) == 32 and every[:30] == first and not calls
    session.label(first[0]["members"], "card")
    again = session.clusters()
    assert calls == [1] and not set(first[0]["members"]) & {m for c in again for m in c["members"]}


def test_retune_is_scored_on_held_out_labels_and_kept_out_of_the_work_space_when_worse(tmp_path):
    from embtune.tuners.folder import load_tuner_with_base

    session = small_session(tmp_path)
    with pytest.raises(EmbtuneError, match="two kinds"):
        session.retune()
    for items, name in ((range(0, 30), "card"), (range(40, 70), "refund"), (range(80, 100), "atm")):
        session.label(list(items), name)
    result = session.retune()
    assert result["heldout"]["n"] == 16 and result["heldout"]["after"] >= result["heldout"]["before"] == 1.0
    assert not result["kept"] and not result["heldout"]["worse"]
    assert [s.name for s in session.spaces] == ["base", "re-tuned on 80 labels"]
    tuner, _ = load_tuner_with_base(session.output / "retuned_tuner")  # usable with `embtune encode --tuner`
    x = tuner.transform(session.base_vectors)
    assert np.allclose(x / np.linalg.norm(x, axis=1, keepdims=True), session.work_space.vectors, atol=1e-5)
    # the labels follow the space they were made in; the base vectors a re-tune starts from are noise: worse, kept out
    x = small_session_vectors()
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    worse = ExploreSession([f"t{i}" for i in range(len(x))], [Space("tuned", x, project(x))], tmp_path / "worse",
                           base_vectors=noise)
    for items, name in ((range(0, 30), "card"), (range(40, 70), "refund"), (range(80, 100), "atm")):
        worse.label(list(items), name)
    result = worse.retune()
    assert result["kept"] and result["heldout"]["worse"] and result["heldout"]["after"] < 0.8 < result["heldout"]["before"]
    assert [s.name for s in worse.spaces] == ["tuned"] and (tmp_path / "worse" / "retuned_tuner").is_dir()
    few = small_session(tmp_path / "few")
    few.label([0, 1, 2], "card")
    few.label([40, 41], "refund")
    result = few.retune()
    assert "5 manual labels" in result["heldout"]["skipped"] and not result["kept"] and len(few.spaces) == 2


def test_export_keeps_every_original_column(tmp_path):
    source = tmp_path / "c.jsonl"
    rows = [{"id": i, "text": f"{WORDS[i // 40]} {i}", "lang": "en"} for i in range(160)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    session = small_session(tmp_path, source=source)
    session.label([0, 1], "card")
    content, path = session.export("jsonl")
    out = [json.loads(line) for line in content.splitlines()]
    assert path.name == "labels.jsonl" and len(out) == 160
    assert out[0] == {"id": 0, "text": rows[0]["text"], "lang": "en", "label": "card", "label_source": "manual",
                      "confidence": 1.0}
    assert out[5]["label"] is None and out[5]["id"] == 5


def test_maps_are_computed_once_and_an_after_map_lines_up_with_its_before_map(monkeypatch):
    x = small_session_vectors()
    calls = []
    real = maps._pca
    monkeypatch.setattr(maps, "_pca", lambda v, seed: calls.append(len(v)) or real(v, seed))
    first = project(x)
    again = project(x)
    assert calls == [160] and np.array_equal(first, again) and first.shape == (160, 2)
    assert np.abs(first).max() == pytest.approx(1.0) and len(list(maps.maps_dir().glob("*.npy"))) == 1
    mirrored = project(-x, init=first)  # the same geometry, whatever sign PCA gives its axes: the same map
    np.testing.assert_allclose(mirrored, first, atol=1e-4)
    for cached in maps.maps_dir().glob("*.npy"):  # a damaged cache file is recomputed, not fatal
        cached.write_bytes(b"damaged")
    assert np.array_equal(project(x), first) and calls == [160, 160, 160]


def test_umap_is_refused_with_the_install_hint_when_missing_and_used_when_installed(monkeypatch):
    x = small_session_vectors()
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "umap", None)  # what `import umap` meets without embtune[umap]
        with pytest.raises(EmbtuneError, match=r"pip install 'embtune\[umap\]'"):
            project(x, "umap")
    with pytest.raises(EmbtuneError, match="use pca or umap"):
        project(x, "tsne")
    pytest.importorskip("umap")
    xy = project(x, "umap")
    groups = np.arange(160) // 40
    distances = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(160) * 1e9
    assert (groups[distances.argmin(1)] == groups).mean() > 0.95  # the four groups stay apart on the map
    monkeypatch.setattr(maps, "_umap", lambda *a: pytest.fail("UMAP ran again: the cached map was not used"))
    assert np.array_equal(project(x, "umap"), xy)


def small_session_vectors(n_per: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    x = np.concatenate([c + 0.2 * rng.normal(size=(n_per, 16)) for c in centres]).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def image_folder(root: Path, per_class: int = 10) -> Path:
    """Two kinds of image (red discs, blue stripes) in class sub-folders, of several sizes and modes."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for kind in ("red", "blue"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = int(rng.integers(40, 400))
            image = Image.new("RGBA" if i % 3 == 0 else "RGB", (size, int(size * 0.75)), "white")
            draw = ImageDraw.Draw(image)
            if kind == "red":
                draw.ellipse((size * 0.2, size * 0.1, size * 0.7, size * 0.6), fill=(200 + i, 20, 20))
            else:
                for x in range(0, size, 12):
                    draw.rectangle((x, 0, x + 5, size), fill=(20, 20, 200 + i))
            image.save(root / kind / f"{kind}_{i:02d}.png")
    return root


def test_thumbnails_are_small_jpegs_made_once_and_remade_when_the_image_changes(tmp_path, monkeypatch):
    from PIL import Image

    source = image_folder(tmp_path / "img", per_class=1) / "red" / "red_00.png"
    data = thumbnails.thumbnail(source)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and max(image.size) <= thumbnails.SIZE and image.mode == "RGB"
    assert len(list(thumbnails.thumbnails_dir().glob("*.jpg"))) == 1
    made = []
    real = thumbnails.make_thumbnail
    monkeypatch.setattr(thumbnails, "make_thumbnail", lambda p, size=thumbnails.SIZE: made.append(p) or real(p, size))
    assert thumbnails.thumbnail(source) == data and not made  # read from the cache
    Image.new("RGB", (50, 50), "green").save(source)
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert thumbnails.thumbnail(source) != data and len(made) == 1  # a changed image gets a new thumbnail
    with pytest.raises(EmbtuneError, match="moved or deleted"):
        thumbnails.thumbnail(tmp_path / "gone.png")


def test_an_image_folder_is_explored_with_thumbnails_path_search_and_its_index_columns_exported(tmp_path):
    folder = image_folder(tmp_path / "img")
    index = tmp_path / "index.jsonl"  # the same images through an index file with a column of its own
    files = sorted(folder.rglob("*.png"))
    index.write_text("".join(json.dumps({"path": str(p.relative_to(tmp_path)), "camera": f"c{i}"}) + "\n"
                             for i, p in enumerate(files)))
    session = open_session(index, tmp_path / "out", show_progress=False)
    assert session.unit == "images" and len(session.texts) == 20
    srv = ExploreServer(session)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        points = json.loads(call(srv, "/api/points")[1])
        assert points["unit"] == "images" and len(points["spaces"][0]["x"]) == 20
        assert call(srv, "/api/thumb?id=3", token=False)[0] == 403
        status, jpeg = call(srv, f"/api/thumb?id=3&token={srv.token}", token=False)
        assert status == 200 and jpeg[:3] == b"\xff\xd8\xff"  # a JPEG
        assert call(srv, "/api/thumb?id=99")[0] == 404
        found = json.loads(call(srv, "/api/search?q=red_0[0-4]")[1])
        assert [Path(session.texts[i]).name for i in found] == [f"red_0{i}.png" for i in range(5)]
        clusters = json.loads(call(srv, "/api/clusters")[1])
        assert clusters and all(c["keywords"] == [] and len(c["example_ids"]) == len(c["examples"]) for c in clusters)
        call(srv, "/api/label", {"items": found, "label": "disc"})
        rows = [json.loads(line) for line in call(srv, "/api/export?format=jsonl")[1].decode().splitlines()]
    finally:
        srv.shutdown()
        srv.server_close()
    assert len(rows) == 20 and all(set(r) == {"path", "camera", "label", "label_source", "confidence"} for r in rows)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["red_00.png"]["label"] == "disc" and by_name["red_00.png"]["path"] == "img/red/red_00.png"
    assert by_name["blue_00.png"]["label"] is None
    with pytest.raises(EmbtuneError, match="holds texts"):
        small_session(tmp_path / "t").thumbnail(0)


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    return browser, sync_playwright


def _open_page(playwright, browser):
    """Headless Chromium with software WebGL, one page, and the list its page errors go to."""
    chrome = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox", "--enable-unsafe-swiftshader",
                                                                       "--use-gl=swiftshader", "--ignore-gpu-blocklist"])
    page = chrome.new_page(viewport={"width": 1300, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return chrome, page, errors


def _start(corpus, model, out, port=0):
    process = subprocess.Popen([sys.executable, "-m", "embtune", "explore", str(corpus), "-o", str(out), "--model",
                                str(model), "--port", str(port), "-q"], stdout=subprocess.PIPE, text=True)
    deadline, said = time.time() + 120, []
    while time.time() < deadline:
        line = process.stdout.readline()
        said.append(line)
        found = re.search(r"(http://\S+)", line)
        if found:  # the suggested groups were computed before the server listened
            assert any(re.match(r"  ready in \d+\.\d s", said_line) for said_line in said), said
            return process, found.group(1)
        if process.poll() is not None:
            raise AssertionError(f"explore exited with {process.returncode}")
    raise AssertionError("explore printed no URL")


@pytest.mark.slow
def test_page_in_headless_chromium_labels_undoes_exports_and_survives_kill_9(tiny_model, demo_rows, tmp_path):
    browser, sync_playwright = _chromium()
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": r["text"], "intent": r["label"]}) + "\n" for r in demo_rows[:300]))
    out = tmp_path / "labels"
    process, url = _start(corpus, tiny_model, out)
    try:
        with sync_playwright() as p:
            chrome, page, errors = _open_page(p, browser)
            forbidden = page.goto(url.split("?")[0])
            assert forbidden.status == 403
            page.goto(url)
            page.wait_for_function("window.embtune && window.embtune.ready", timeout=60_000)
            assert page.evaluate("window.embtune.pointCount()") == 300
            assert page.locator("#plot0 canvas").count() > 0  # drawn with WebGL
            page.evaluate("window.embtune.select([0, 1, 2, 3, 4])")
            page.wait_for_function("document.getElementById('texts').children.length === 5")
            assert page.inner_text("#count") == "5"
            assert page.evaluate("window.embtune.shownTexts()")[0] == demo_rows[0]["text"]
            # a selection larger than the panel: the person pages through it and takes out a text on the last page
            page.evaluate("window.embtune.select([...Array(120).keys()].map((i) => i + 100))")
            page.wait_for_function("document.getElementById('texts').children.length === 50")
            assert page.inner_text("#more") == "show 50 more (50 of 120 shown)"
            page.click("#more")
            page.wait_for_function("document.getElementById('texts').children.length === 100")
            page.click("#more")
            page.wait_for_function("document.getElementById('texts').children.length === 120")
            assert not page.is_visible("#more")
            assert page.evaluate("window.embtune.shownTexts()")[115] == demo_rows[215]["text"]
            page.click("#texts li:nth-child(116) button.out")
            page.wait_for_function("document.getElementById('texts').children.length === 119")
            assert page.inner_text("#count") == "119" and 215 not in page.evaluate("window.embtune.selection()")
            assert page.evaluate("window.embtune.shownTexts()")[115] == demo_rows[216]["text"]  # the page stays put
            page.evaluate("window.embtune.select([0, 1, 2, 3, 4])")
            page.wait_for_function("document.getElementById('texts').children.length === 5")
            assert "taken out" not in page.inner_text("#leftout") and not page.is_visible("#more")
            page.fill("#label", "card arrival")
            page.press("#label", "Enter")
            page.wait_for_function("Object.keys(window.embtune.labels()).length === 5")
            # the suggested clusters holding those 5 texts say how much of them is labelled now
            page.wait_for_function("[...document.querySelectorAll('#clusters li .size')]"
                                   ".some((s) => / of \\d+ texts not labelled yet|^all \\d+ texts labelled/.test(s.textContent))")
            page.evaluate("window.embtune.select([10, 11])")
            page.wait_for_function("document.getElementById('texts').children.length === 2")
            page.click("#count")  # out of the label box (where "1" would be typed), off the map
            page.keyboard.press("1")  # the most recent label
            page.wait_for_function("Object.keys(window.embtune.labels()).length === 7")
            page.click("#undo")
            page.wait_for_function("Object.keys(window.embtune.labels()).length === 5")
            # a person reads the selection and takes one text out with its x: it is not that label
            page.evaluate("window.embtune.select([20, 21, 22])")
            page.wait_for_function("document.getElementById('texts').children.length === 3")
            page.click("#texts li:nth-child(2) button.out")
            page.wait_for_function("document.getElementById('texts').children.length === 2")
            assert page.inner_text("#count") == "2" and "1 taken out" in page.inner_text("#leftout")
            assert page.evaluate("window.embtune.selection()") == [20, 22]
            page.fill("#label", "top up")
            page.press("#label", "Enter")
            page.wait_for_function("Object.keys(window.embtune.labels()).length === 7")
            events = [json.loads(line) for line in (out / "labels.events.jsonl").read_text().splitlines()]
            assert events[-1]["items"] == [20, 22] and events[-1]["left_out"] == [21]
            page.click("#next")  # the queue of uncertain texts, and the suspect check, fill their lists
            page.wait_for_function("document.getElementById('queue').children.length > 0")
            page.click("#check")
            page.wait_for_function("document.getElementById('suspects').children.length > 0")
            with page.expect_download() as download:
                page.click("#csv")
            rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
            assert len(rows) == 300 and set(rows[0]) >= {"text", "intent", "label", "label_source", "confidence"}
            assert [r["label"] for r in rows[:6]] == ["card arrival"] * 5 + [""]
            assert [r["label"] for r in rows[20:23]] == ["top up", "", "top up"]
            # refresh the suggested clusters (labelled texts are left out of them now), label the first one whole
            page.evaluate("document.querySelector('#clusters li').dataset.stale = '1'")
            page.click("#refresh")
            page.wait_for_function("document.querySelectorAll('#clusters li').length > 0"
                                   " && !document.querySelector('#clusters li[data-stale]')")
            assert "% together" in page.inner_text("#clusters li:nth-child(1)")
            page.click("#clusters li:nth-child(1)")
            page.wait_for_function("window.embtune.selection().length > 0")
            members = page.evaluate("window.embtune.selection()")
            assert not set(members) & {0, 1, 2, 3, 4, 20, 22}
            page.fill("#label", "cluster one")
            page.press("#label", "Enter")
            page.wait_for_function(f"Object.keys(window.embtune.labels()).length === {7 + len(members)}")
            first = page.locator("#clusters li").first
            assert "done" in first.get_attribute("class") and first.inner_text().startswith(f"all {len(members)} texts labelled")
            # the accept button counts the propagated guesses at its threshold, as the server has them
            page.fill("#threshold", "0.5")
            page.dispatch_event("#threshold", "input")
            guesses = page.evaluate("fetch('/api/propagation', {headers: {'X-Embtune-Token': new URLSearchParams("
                                    "location.search).get('token')}}).then((r) => r.json())")
            sure = sum(c >= 0.5 for c in guesses["confidence"])
            page.wait_for_function(f"document.getElementById('accept').textContent === 'accept {sure}'")
            # on the map an unlabelled item with a fair guess (0.5 up) shows it: that label's colour, fainter the less
            # sure; one with a weak guess stays grey
            for j in (int(np.argmax(guesses["confidence"])), int(np.argmin(guesses["confidence"]))):
                item, conf = guesses["items"][j], guesses["confidence"][j]
                marker = page.evaluate(f"(() => {{ const m = document.getElementById('plot0').data[0].marker;"
                                       f" return [m.color[{item}], m.opacity[{item}], m.color[0]]; }})()")
                if conf >= 0.5:
                    assert abs(marker[1] - (0.25 + 0.3 * conf)) < 1e-6 and marker[0] != "#c8c8c8", (conf, marker)
                    assert guesses["labels"][j] != "card arrival" or marker[0] == marker[2]  # item 0: card arrival
                else:
                    assert marker[:2] == ["#c8c8c8", 0.8], (conf, marker)
            assert page.is_disabled("#accept") == (sure == 0)
            if sure:
                before = len(page.evaluate("window.embtune.labels()"))
                page.click("#accept")
                page.wait_for_function(f"Object.keys(window.embtune.labels()).length === {before + sure}")
                assert page.inner_text("#accepted") == f"{sure} accepted"
            page.fill("#threshold", "1.01")  # above any confidence: nothing to accept, the button is off
            page.dispatch_event("#threshold", "input")
            assert page.inner_text("#accept") == "accept 0" and page.is_disabled("#accept")
            labelled = {int(k): v for k, v in page.evaluate("window.embtune.labels()").items()}
            page.click("#retune")  # says how the re-tuned space does on labels held out from a trial fit
            page.wait_for_function("document.getElementById('retuned').textContent.startsWith('fitted on')", timeout=60_000)
            said = page.inner_text("#retuned")
            assert re.search(r"kNN accuracy \d+\.\d% against \d+\.\d% in the space before", said) or (
                len(members) + 7 < 20 and "No held-out check" in said), said
            assert not errors, errors
            chrome.close()
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    again, url = _start(corpus, tiny_model, out)  # the same folder: the session continues
    try:
        token = url.split("token=")[1]
        request = urllib.request.Request(url.split("?")[0] + "api/points", headers={"X-Embtune-Token": token})
        labels = json.loads(urllib.request.urlopen(request, timeout=30).read())["labels"]
        assert sorted(int(k) for k in labels) == sorted(labelled) and set(labelled) >= {0, 1, 2, 3, 4, 20, 22, *members}
        assert labels["0"][0] == "card arrival" and {labels[str(m)][0] for m in members} == {"cluster one"}
    finally:
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=30) == 0  # Ctrl-C stops it cleanly


@pytest.mark.slow
def test_page_shows_an_image_folder_as_thumbnails_and_labels_it(tmp_path):
    browser, sync_playwright = _chromium()
    folder = image_folder(tmp_path / "img")
    process, url = _start(folder, "efficientnet-lite0", tmp_path / "labels")
    try:
        with sync_playwright() as p:
            chrome, page, errors = _open_page(p, browser)
            page.goto(url)
            page.wait_for_function("window.embtune && window.embtune.ready", timeout=60_000)
            assert page.evaluate("window.embtune.pointCount()") == 20
            page.evaluate("window.embtune.select([0, 1, 2, 3])")
            page.wait_for_function("window.embtune.loadedThumbnails() === 4", timeout=30_000)  # decoded, not broken
            assert all(Path(t).suffix == ".png" for t in page.evaluate("window.embtune.shownTexts()"))
            page.fill("#label", "stripes")
            page.press("#label", "Enter")
            page.wait_for_function("Object.keys(window.embtune.labels()).length === 4")
            page.wait_for_function("document.querySelectorAll('#clusters img').length > 0")  # clusters show thumbnails
            page.fill("#search", "red_0[0-2]")
            page.press("#search", "Enter")
            page.wait_for_function("window.embtune.selection().length === 3")
            assert not errors, errors
            chrome.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    events = (tmp_path / "labels" / "labels.events.jsonl").read_text()
    assert "stripes" in events
