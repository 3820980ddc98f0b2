// embtune explore: WebGL maps (plotly scattergl) of one or two spaces with linked selection; labels go to the server,
// which appends them to its event log. window.embtune is a small hook for tests and scripts.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const state = { n: 0, unit: "texts", spaces: [], labels: {}, given: null, selection: [], leftOut: [], recent: [], clusters: [],
  colour: "label", hide: false, guess: {}, guessed: 0 };
const $ = (id) => document.getElementById(id);
const PAGE = 50; // texts the selection panel adds at a time (the server's MAX_PANEL)
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1"];

async function api(path, body) {
  const options = { headers: { "X-Embtune-Token": token } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const value = await response.json();
  if (!response.ok) { $("error").textContent = value.error || response.statusText; throw new Error(value.error); }
  $("error").textContent = "";
  return value;
}

function uniform(values) {
  // one value for every point draws much faster in scattergl than a per-point array of the same value
  for (let i = 1; i < values.length; i++) if (values[i] !== values[0]) return values;
  return values.length ? values[0] : values;
}

function colours() {
  const names = {};
  const source = state.colour === "given" && state.given ? state.given : null;
  const out = new Array(state.n);
  for (let i = 0; i < state.n; i++) {
    let name = null;
    if (state.colour === "label") name = state.labels[i] ? state.labels[i][0] : shownGuess(i) ? state.guess[i][0] : null;
    if (source) name = source[i];
    if (name === null) { out[i] = "#c8c8c8"; continue; }
    if (!(name in names)) names[name] = Object.keys(names).length;
    out[i] = PALETTE[names[name] % PALETTE.length];
  }
  return uniform(out);
}

const GUESS_SHOWN = 0.5; // an unlabelled item's propagated guess shows on the map from this confidence up

function shownGuess(i) {
  return !state.labels[i] && state.guess[i] && state.guess[i][1] >= GUESS_SHOWN;
}

function opacity() {
  // manual labels solid; accepted propagated ones by their confidence; an unlabelled item with a fair guess (not
  // accepted yet) fainter, by its confidence (0.4-0.55); other unlabelled items grey, as before any label
  const out = new Array(state.n);
  const guesses = state.colour === "label";
  for (let i = 0; i < state.n; i++) {
    const l = state.labels[i];
    out[i] = state.hide && l ? 0 : l && l[1] === "propagated" ? 0.3 + 0.6 * l[2]
      : guesses && shownGuess(i) ? 0.25 + 0.3 * state.guess[i][1] : 0.8;
  }
  return uniform(out);
}

function markerSize(n) {
  // dense maps get smaller dots: they overlap less, and a software-rendered redraw of 100,000 points after a lasso
  // took 424 ms at size 4 and 321 ms at size 2 (bench/explore_load.py, headless Chromium)
  return n > 50000 ? 2 : n > 10000 ? 3 : 4;
}

function glPixelRatio() {
  // plotly draws its WebGL canvases at 2x by default; on a 1x screen that is four times the pixels for nothing, and
  // where WebGL is software-rendered every frame is read back pixel by pixel: the screen's own ratio (1 to 4) instead
  return Math.min(4, Math.max(1, Math.round(window.devicePixelRatio || 1)));
}

function draw() {
  const plots = $("plots");
  plots.style.setProperty("--spaces", state.spaces.length);
  plots.innerHTML = "";
  const c = colours(), o = opacity();
  state.spaces.forEach((space, s) => {
    const div = document.createElement("div");
    div.className = "plot";
    div.id = "plot" + s;
    plots.appendChild(div);
    Plotly.newPlot(div, [{
      type: "scattergl", mode: "markers", x: space.x, y: space.y,
      marker: { size: markerSize(state.n), color: c, opacity: o }, hoverinfo: "none",
      selectedpoints: state.selection.length ? state.selection : null,
      selected: { marker: { color: "#000", opacity: 1 } }, unselected: { marker: { opacity: 0.15 } },
    }], {
      title: { text: space.name, font: { size: 13 } }, dragmode: "lasso", margin: { l: 20, r: 10, t: 30, b: 20 },
      xaxis: { showticklabels: false, zeroline: false }, yaxis: { showticklabels: false, zeroline: false },
      showlegend: false,
    }, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"], plotGlPixelRatio: glPixelRatio() });
    div.on("plotly_selected", (event) => {
      if (!event) return;
      select(event.points.map((p) => p.pointIndex), s);
    });
    div.on("plotly_deselect", () => select([], s));
  });
  $("plots").dataset.points = String(state.n * state.spaces.length);
}

function restyle() {
  const c = colours(), o = opacity();
  state.spaces.forEach((_, s) => Plotly.restyle("plot" + s, { "marker.color": [c], "marker.opacity": [o] }));
}

async function select(items, from, leftOut = []) {
  state.selection = items;
  state.leftOut = leftOut;
  state.spaces.forEach((_, s) => {
    if (s !== from) Plotly.restyle("plot" + s, { selectedpoints: [items.length ? items : null] });
  });
  showCount();
  await showTexts(false);
}

function showCount() {
  $("count").textContent = String(state.selection.length);
  const out = state.leftOut.length;
  $("leftout").textContent = out ? `(${out} taken out: labelling tells the page they are not that label)` : "";
}

async function leaveOut(id) {
  // the person read this item and it does not belong with the rest: out of the selection, and when the selection is
  // labelled the server records that it is not that label (propagation then never suggests it for this item). The
  // panel keeps the rest where they are (the person may be reading page 3 of a large selection).
  if (!state.selection.includes(id)) return;
  state.selection = state.selection.filter((i) => i !== id);
  state.leftOut = [...state.leftOut, id];
  for (const li of Array.from($("texts").children)) if (+li.dataset.id === id) li.remove();
  showCount();
  updateMore();
  restyleSelection();
}

function thumb(id, title) {
  // an image corpus's item: its thumbnail, made by the server on first request and cached there and here
  const img = document.createElement("img");
  img.src = `/api/thumb?id=${id}&token=${encodeURIComponent(token)}`;
  img.loading = "lazy";
  img.alt = img.title = title;
  return img;
}

function itemNode(id, text, note, removable) {
  // one item of a list: its text, or its thumbnail for images (the path as its title); data-text keeps the text;
  // removable (the selection panel): a button that takes the item out of the selection
  const li = document.createElement("li");
  li.dataset.text = text;
  li.dataset.id = String(id);
  if (removable) {
    const out = document.createElement("button");
    out.className = "out";
    out.textContent = "×";
    out.title = "take out of the selection (not this label)";
    out.onclick = () => leaveOut(id);
    li.appendChild(out);
  }
  if (state.unit === "images") li.appendChild(thumb(id, text));
  else li.appendChild(document.createTextNode(text));
  if (note) { const span = document.createElement("span"); span.className = "lab"; span.textContent = note; li.appendChild(span); }
  return li;
}

async function showTexts(resample) {
  const shown = await api("/api/texts", { items: state.selection, resample });
  const list = $("texts");
  list.innerHTML = "";
  for (const item of shown.items) list.appendChild(itemNode(item.id, item.text, item.label, true));
  list.dataset.count = String(shown.count);
  updateMore();
}

async function showMore() {
  // the next texts of the selection that the panel does not show yet, added below the others
  const shown = new Set(Array.from($("texts").children).map((li) => +li.dataset.id));
  const next = state.selection.filter((i) => !shown.has(i)).slice(0, PAGE);
  if (!next.length) return;
  const found = await api("/api/texts", { items: next });
  for (const item of found.items) $("texts").appendChild(itemNode(item.id, item.text, item.label, true));
  updateMore();
}

function updateMore() {
  const shown = $("texts").children.length, total = state.selection.length;
  $("more").hidden = shown >= total;
  $("more").textContent = `show ${Math.min(PAGE, total - shown)} more (${shown} of ${total} shown)`;
}

function applyState(result) {
  state.labels = result.labels;
  $("undo").disabled = !result.can_undo;
  $("redo").disabled = !result.can_redo;
  $("status").textContent = `${Object.keys(state.labels).length} of ${state.n} labelled`;
  restyle();
  markClusters();
  loadGuesses();
}

async function loadGuesses() {
  // the propagated label and confidence of every unlabelled item, for the map and the accept button; a newer call
  // (labels changed again meanwhile) wins
  const asked = ++state.guessed;
  const found = Object.keys(state.labels).length ? await api("/api/propagation") : { items: [], labels: [], confidence: [] };
  if (asked !== state.guessed) return;
  state.guess = {};
  found.items.forEach((item, j) => { state.guess[item] = [found.labels[j], found.confidence[j]]; });
  if (state.colour === "label") restyle();
  updateAccept();
}

function updateAccept() {
  // the button says how many guesses it would accept at the threshold, and is off when that is none
  const threshold = +$("threshold").value;
  const sure = Object.values(state.guess).filter((g) => g[1] >= threshold).length;
  $("accept").textContent = `accept ${sure}`;
  $("accept").disabled = sure === 0;
}

function markClusters() {
  // the suggested clusters stay as they were computed (refresh recomputes them); each says how much of it is labelled
  const word = state.unit === "images" ? "images" : "texts";
  for (const cluster of state.clusters) {
    const left = cluster.members.filter((m) => !state.labels[m]).length;
    cluster.node.querySelector(".size").textContent = left === cluster.size ? `${cluster.size} ${word}`
      : left ? `${left} of ${cluster.size} ${word} not labelled yet` : `all ${cluster.size} ${word} labelled`;
    cluster.node.classList.toggle("done", left === 0);
  }
}

async function label(name) {
  name = (name || "").trim();
  if (!name || !state.selection.length) return;
  applyState(await api("/api/label", { items: state.selection, label: name, left_out: state.leftOut }));
  state.recent = [name, ...state.recent.filter((r) => r !== name)].slice(0, 9);
  $("recent").innerHTML = state.recent.map((r, i) => `<button data-label="${i}">${i + 1}: ${r.replace(/</g, "&lt;")}</button>`).join(" ");
  await showTexts(false);
}

async function loadClusters() {
  const found = await api("/api/clusters");
  const list = $("clusters");
  list.innerHTML = "";
  for (const cluster of found) {
    const li = document.createElement("li");
    const together = `${Math.round(100 * cluster.cohesion)}% together`;
    li.title = `${together}: that share of these ${state.unit}' 10 nearest neighbours are in this group too. ` +
      "The higher it is, the fewer you will take out before labelling the group; the groups with the most such " +
      `${state.unit} come first.`;
    const size = document.createElement("span");
    size.className = "size";
    li.appendChild(size);
    if (state.unit === "images") {
      li.appendChild(document.createTextNode(`, ${together} `));
      cluster.example_ids.forEach((id, j) => li.appendChild(thumb(id, cluster.examples[j])));
    } else li.appendChild(document.createTextNode(`, ${together}: ${cluster.keywords.join(", ")} — ${cluster.examples[0] || ""}`));
    li.onclick = () => select(cluster.members, -1).then(() => restyleSelection());
    list.appendChild(li);
    cluster.node = li;
  }
  state.clusters = found;
  markClusters();
}

function restyleSelection() {
  state.spaces.forEach((_, s) => Plotly.restyle("plot" + s, { selectedpoints: [state.selection.length ? state.selection : null] }));
}

async function load() {
  const began = performance.now();
  const points = await api("/api/points");
  window.embtune.timings.points_ms = performance.now() - began;
  state.n = points.n;
  state.unit = points.unit;
  $("texts").className = $("queue").className = $("suspects").className = $("clusters").className = points.unit;
  if (points.unit === "images") $("search").placeholder = "search file names (regex)";
  state.spaces = points.spaces;
  state.given = points.given_labels;
  if (!state.given) $("colour").querySelector('option[value="given"]').disabled = true;
  const drawing = performance.now();
  draw();
  applyState(points);
  window.embtune.timings.draw_ms = performance.now() - drawing;
  loadClusters();
  window.embtune.ready = true;
}

$("apply").onclick = () => label($("label").value);
$("label").addEventListener("keydown", (e) => { if (e.key === "Enter") label($("label").value); });
$("remove").onclick = async () => { if (state.selection.length) applyState(await api("/api/unlabel", { items: state.selection })); };
$("recent").onclick = (e) => { const i = e.target.dataset.label; if (i !== undefined) label(state.recent[+i]); };
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;
  if (e.key >= "1" && e.key <= "9" && state.recent[+e.key - 1]) label(state.recent[+e.key - 1]);
  if ((e.ctrlKey || e.metaKey) && e.key === "z") $("undo").click();
  if ((e.ctrlKey || e.metaKey) && e.key === "y") $("redo").click();
});
$("undo").onclick = async () => { applyState(await api("/api/undo", {})); await showTexts(false); };
$("redo").onclick = async () => { applyState(await api("/api/redo", {})); await showTexts(false); };
$("resample").onclick = () => showTexts(true);
$("more").onclick = showMore;
$("clear").onclick = () => select([], -1).then(restyleSelection);
$("hide").onchange = (e) => { state.hide = e.target.checked; restyle(); };
$("colour").onchange = (e) => { state.colour = e.target.value; restyle(); };
$("go").onclick = async () => { await select(await api("/api/search?q=" + encodeURIComponent($("search").value)), -1); restyleSelection(); };
$("search").addEventListener("keydown", (e) => { if (e.key === "Enter") $("go").click(); });
$("accept").onclick = async () => {
  const result = await api("/api/accept", { threshold: +$("threshold").value });
  applyState(result);
  $("accepted").textContent = `${result.accepted} accepted`;
};
$("threshold").addEventListener("input", updateAccept);
$("retune").onclick = async () => {
  $("retuned").textContent = "fitting…";
  const result = await api("/api/retune", {});
  state.spaces = result.spaces;
  draw();
  applyState(result);
  const held = result.heldout, pct = (v) => `${(100 * v).toFixed(1)}%`;
  const proof = held.skipped ? ` No held-out check (${held.skipped}).`
    : ` On ${held.n} of your labels held out from a trial fit, kNN accuracy ${pct(held.after)} against ` +
      `${pct(held.before)} in the space before` + (result.kept
        ? ": worse for your labels, so the maps and suggestions stay as they were (the tuner is saved if you want it)."
        : held.after < held.before ? " (lower, but within the noise of that many labels)." : ".");
  $("retuned").textContent = `fitted on ${result.n_labels} labels in ${result.seconds} s, saved to ${result.tuner}.${proof}`;
};
$("refresh").onclick = loadClusters;
$("next").onclick = async () => {
  // uncertain, spread-out texts; click one to select it
  const items = await api("/api/queue");
  const shown = await api("/api/texts", { items });
  const list = $("queue");
  list.innerHTML = "";
  for (const item of shown.items) {
    const li = itemNode(item.id, item.text, item.label);
    li.onclick = () => select([item.id], -1).then(restyleSelection);
    list.appendChild(li);
  }
};
$("check").onclick = async () => {
  const found = await api("/api/suspects");
  const list = $("suspects");
  list.innerHTML = "";
  for (const s of found) {
    const li = itemNode(s.id, s.text, `labelled ${s.label}, its neighbours say ${s.neighbours_say}`);
    li.onclick = () => select([s.id], -1).then(restyleSelection);
    list.appendChild(li);
  }
  if (!found.length) list.innerHTML = "<li class=muted>none: every label agrees with most of its labelled neighbours</li>";
};
for (const fmt of ["csv", "jsonl"]) $(fmt).href = `/api/export?format=${fmt}&token=${encodeURIComponent(token)}`;

window.embtune = {
  ready: false,
  timings: {},
  select: (items) => select(items, -1).then(restyleSelection),
  selection: () => state.selection.slice(),
  leaveOut: (id) => leaveOut(id),
  label: (name) => label(name),
  labels: () => Object.assign({}, state.labels),
  pointCount: () => Number($("plots").dataset.points || 0),
  shownTexts: () => Array.from($("texts").children).map((li) => li.dataset.text),
  // images: how many of the panel's thumbnails have loaded (decoded, with a width)
  loadedThumbnails: () => Array.from($("texts").querySelectorAll("img")).filter((img) => img.complete && img.naturalWidth > 0).length,
};
load();
