"""One `embtune explore` session: the corpus, its spaces (before / after), their 2-D maps, and the label state.

Everything the page asks for is a method here returning plain JSON-able values, so the server only routes and the
logic is testable without a browser. Maps come from :mod:`embtune.explore.maps` (PCA or UMAP, cached). An image
corpus's items are image paths: the panel shows thumbnails (:mod:`embtune.explore.thumbnails`) and search matches
the paths. The label state is
the fsync'd event log of :mod:`embtune.labelling.events` in the output folder; suggestions, propagation, the queue and
suspects are computed in the high-dimensional space the person labels in (the "after" space when there is one).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embtune.data.vectors import l2_normalize, nearest_neighbors
from embtune.errors import EmbtuneError
from embtune.explore.maps import project
from embtune.labelling import EVENTS_FILE, LabelLog, next_to_label, propagate, suggest_clusters, suspects

log = logging.getLogger(__name__)
MIN_HELDOUT_LABELS = 20  # manual labels a re-tune needs before it is scored on a held-out part of them
MAX_PANEL = 50  # texts the selection panel shows at once (a resample draws another 50)
RETUNED = "retuned_tuner"  # the tuner the re-tune button fits, in the output folder


@dataclass
class Space:
    name: str
    vectors: np.ndarray  # unit rows
    xy: np.ndarray  # (n, 2) float32 map


class ExploreSession:
    """The state behind the page. ``spaces``: one or two (before, after); labels live in ``output``. ``unit``:
    "texts", or "images" when ``texts`` are image paths. ``projection``: how a re-tuned space is mapped."""

    def __init__(self, texts: list[str], spaces: list[Space], output: Path, *, source: Path | None = None,
                 text_field: str = "text", given_labels: list[str] | None = None, base_vectors: np.ndarray | None = None,
                 base_meta: dict[str, Any] | None = None, unit: str = "texts", projection: str = "pca"):
        self.texts, self.spaces, self.output = texts, spaces, Path(output)
        self.unit, self.projection = unit, projection
        self.source, self.text_field, self.given_labels = source, text_field, given_labels
        self.base_vectors = base_vectors if base_vectors is not None else spaces[0].vectors
        self.base_meta = base_meta or {}
        self.log = LabelLog.open(self.output / EVENTS_FILE)
        self._rng = np.random.default_rng(0)
        self._neighbours: np.ndarray | None = None  # the work space's neighbour table, computed on first use
        self._computing = threading.RLock()  # one computation of the table and the groups at a time
        self._clusters: tuple[bytes, list[dict[str, Any]]] | None = None  # (the labelled items, the groups for them)

    @property
    def work_space(self) -> Space:
        """The space suggestions and propagation are computed in: the last one (the tuned one when there are two)."""
        return self.spaces[-1]

    def neighbours(self) -> np.ndarray:
        """Each item's 10 nearest items in the work space: labels change, this does not (until a re-tune)."""
        with self._computing:
            if self._neighbours is None:
                self._neighbours = nearest_neighbors(self.work_space.vectors, 10)
            return self._neighbours

    def prepare(self) -> float:
        """Compute what the page asks for first (the neighbour table and the suggested groups) now, before the server
        listens; returns the seconds it took. At 100,000 points these take seconds; computed while the page was in
        use (in a request's thread, or in a background thread even at a low priority), they slowed a lasso in
        bench/explore_load.py from about 245 ms to 335-355 ms to fill the panel, as the browser shares the CPU."""
        start = time.perf_counter()
        self.clusters()
        return time.perf_counter() - start

    def label_names(self) -> dict[int, str]:
        """Item -> its current label (manual or accepted)."""
        return {i: v.label for i, v in self.log.labels().items()}

    # -- what the page reads -----------------------------------------------------------------------------------------

    def points(self) -> dict[str, Any]:
        return {"n": len(self.texts), "unit": self.unit, "spaces": [{"name": s.name, "x": np.round(s.xy[:, 0].astype(np.float64), 4).tolist(),
                                                   "y": np.round(s.xy[:, 1].astype(np.float64), 4).tolist()} for s in self.spaces],
                "given_labels": self.given_labels, **self.points_state()}

    def texts_of(self, items: list[int], *, resample: bool = False) -> dict[str, Any]:
        items = [int(i) for i in items if 0 <= int(i) < len(self.texts)]
        shown = (sorted(self._rng.choice(items, MAX_PANEL, replace=False).tolist()) if resample and len(items) > MAX_PANEL
                 else items[:MAX_PANEL])
        labels = self.log.labels()
        return {"count": len(items), "items": [{"id": i, "text": self.texts[i],
                                                "label": labels[i].label if i in labels else None} for i in shown]}

    def thumbnail(self, item: int) -> bytes:
        """A JPEG thumbnail of image ``item`` (made on first request, then cached)."""
        from embtune.explore.thumbnails import thumbnail

        if self.unit != "images":
            raise EmbtuneError("thumbnails: this corpus holds texts, not images")
        return thumbnail(self.texts[self._check([item])[0]])

    def search(self, pattern: str) -> list[int]:
        """Items whose text (an image's path) matches ``pattern`` (a regular expression, case-insensitive; plain
        words work too)."""
        try:
            regex = re.compile(pattern, re.IGNORECASE)
        except re.error as e:
            raise EmbtuneError(f"search {pattern!r}: not a valid regular expression ({e})") from None
        return [i for i, text in enumerate(self.texts) if regex.search(text)]

    def clusters(self, *, top: int = 30) -> list[dict[str, Any]]:
        """Suggested clusters of the unlabelled items in the work space, the most close-knit members first (size x
        cohesion, see :func:`~embtune.labelling.suggest_clusters`)."""
        labelled = np.array(sorted(self.log.labels()), dtype=np.int64)
        key = labelled.tobytes()
        with self._computing:  # the same labels in the same space: the groups computed last time (e.g. by prepare)
            if self._clusters is None or self._clusters[0] != key:
                found = suggest_clusters(self.work_space.vectors, self.texts if self.unit == "texts" else None,
                                         exclude=labelled, neighbours=self.neighbours())
                self._clusters = (key, [{"cluster": s.cluster, "size": s.size, "cohesion": round(s.cohesion, 3),
                                         "keywords": s.keywords, "members": s.members.tolist(),
                                         "examples": [self.texts[i] for i in s.members[:3]],
                                         "example_ids": s.members[:3].tolist()} for s in found])
            return self._clusters[1][:top]

    def propagation(self) -> dict[str, Any]:
        """The propagated label and confidence of every unlabelled item (from the manual labels and accepted ones)."""
        items, guessed, confidence = propagate(self.work_space.vectors, self.label_names(), neighbours=self.neighbours(),
                                               ruled_out=self.log.ruled_out())
        keep = confidence > 0
        return {"items": items[keep].tolist(), "labels": guessed[keep].tolist(),
                "confidence": confidence[keep].round(4).tolist()}

    def queue(self) -> list[int]:
        return next_to_label(self.work_space.vectors, self.label_names(), neighbours=self.neighbours(),
                             ruled_out=self.log.ruled_out()).tolist()

    def suspects(self) -> list[dict[str, Any]]:
        names = self.label_names()
        found = suspects(self.work_space.vectors, names)
        return [{"id": i, "text": self.texts[i], "label": names[i], "neighbours_say": other,
                 "agreement": round(share, 3)} for i, other, share in found[:100]]

    # -- what the page changes ---------------------------------------------------------------------------------------

    def label(self, items: list[int], label: str, left_out: list[int] | None = None) -> dict[str, Any]:
        """Give ``items`` the label; ``left_out``: items the person took out of this selection (so not this label)."""
        self.log.apply("label", self._check(items), label=label, left_out=self._check(left_out or [], "left_out"))
        return self.points_state()

    def unlabel(self, items: list[int]) -> dict[str, Any]:
        self.log.apply("unlabel", self._check(items))
        return self.points_state()

    def accept(self, threshold: float) -> dict[str, Any]:
        """Accept every propagated label with confidence >= ``threshold``, one action per label."""
        if not 0 < threshold <= 1:
            raise EmbtuneError(f"accept: the confidence threshold is between 0 and 1 (got {threshold})")
        found = self.propagation()
        by_label: dict[str, tuple[list[int], list[float]]] = {}
        for item, guess, conf in zip(found["items"], found["labels"], found["confidence"]):
            if conf >= threshold:
                by_label.setdefault(guess, ([], []))[0].append(item)
                by_label[guess][1].append(conf)
        for guess, (items, confidences) in sorted(by_label.items()):
            self.log.apply("label", items, label=guess, source="propagated", confidences=confidences)
        return {**self.points_state(), "accepted": sum(len(v[0]) for v in by_label.values())}

    def undo(self) -> dict[str, Any]:
        self.log.undo()
        return self.points_state()

    def redo(self) -> dict[str, Any]:
        self.log.redo()
        return self.points_state()

    def points_state(self) -> dict[str, Any]:
        labels = self.log.labels()
        return {"labels": {str(i): [v.label, v.source, v.confidence] for i, v in labels.items()},
                "can_undo": self.log.can_undo, "can_redo": self.log.can_redo, "actions": self.log.actions()}

    def _check(self, items: list[int], field: str = "items") -> list[int]:
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, (int, np.integer)) for i in items):
            raise EmbtuneError(f"{field} must be a list of row numbers (got {str(items)[:80]})")
        items = [int(i) for i in items]
        bad = [i for i in items if not 0 <= i < len(self.texts)]
        if bad:
            raise EmbtuneError(f"items {bad[:5]} are not rows of this corpus (0..{len(self.texts) - 1})")
        return items

    # -- re-tune and export ------------------------------------------------------------------------------------------

    def retune(self, progress=None) -> dict[str, Any]:
        """Fit a ContrastiveTuner on the manual labels so far (on the frozen base vectors), save it to the output
        folder, and show its space beside the one before it, where suggestions and propagation then work. When the
        held-out check (:func:`heldout_check`) finds it worse for these labels than the space they were made in, the
        tuner is still saved but the maps and the work space stay as they were (``kept``: true)."""
        from embtune.tuners import ContrastiveTuner
        from embtune.tuners.folder import save_tuner_folder

        manual = {i: v.label for i, v in self.log.labels().items() if v.source == "manual"}
        if len(set(manual.values())) < 2:
            raise EmbtuneError("re-tune needs manual labels of at least two kinds; label a few selections first")
        items = np.array(sorted(manual), dtype=np.int64)
        names = np.array([manual[i] for i in items])
        start = time.perf_counter()
        heldout = heldout_check(self.work_space.vectors, self.base_vectors, items, names)
        tuner = ContrastiveTuner(random_state=0).fit(self.base_vectors[items], names)
        save_tuner_folder(tuner, self.output / RETUNED, {**self.base_meta, "method": "contrastive",
                                                          "made_by": "embtune explore (re-tune)", "n_fit": len(items)})
        kept = heldout.get("worse", False)
        if not kept:
            vectors = l2_normalize(tuner.transform(self.base_vectors))
            before = self.spaces[-1]
            self.spaces = [before, Space(f"re-tuned on {len(items)} labels", vectors,
                                         project(vectors, self.projection, init=before.xy))]
            with self._computing:  # a new work space
                self._neighbours, self._clusters = None, None
        log.info("explore: re-tuned on %d labels in %.1f s; saved to %s; held out: %s%s", len(items),
                 time.perf_counter() - start, self.output / RETUNED, heldout,
                 "; worse than the space before, which stays" if kept else "")
        return {"seconds": round(time.perf_counter() - start, 1), "tuner": str(self.output / RETUNED),
                "n_labels": len(items), "heldout": heldout, "kept": kept}

    def export(self, fmt: str) -> tuple[str, Path]:
        """Write ``labels.jsonl`` or ``labels.csv`` in the output folder: every original column of each row plus
        ``label``, ``label_source`` and ``confidence`` (empty for rows not labelled). Returns (content, path)."""
        from embtune.atomic import atomic_write_text

        if fmt not in ("jsonl", "csv"):
            raise EmbtuneError(f"export: format jsonl or csv (got {fmt!r})")
        labels = self.log.labels()
        rows = []
        for i, row in enumerate(self._original_rows()):
            given = labels.get(i)
            rows.append({**row, "label": given.label if given else None,
                         "label_source": given.source if given else None,
                         "confidence": given.confidence if given else None})
        if fmt == "jsonl":
            content = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        else:
            buffer = io.StringIO()
            columns = list(dict.fromkeys(k for r in rows for k in r))
            writer = csv.DictWriter(buffer, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
            content = buffer.getvalue()
        path = self.output / f"labels.{fmt}"
        atomic_write_text(path, content)
        return content, path

    def _original_rows(self) -> list[dict[str, Any]]:
        """Each item's row as the file has it (all its columns); items read from memory get {"text": ...}; images
        from a folder get {"path": ...}."""
        if self.unit == "images":
            return self._original_image_rows()
        if self.source is None or not self.source.is_file():
            return [{self.text_field: t} for t in self.texts]
        from embtune.data.readers import iter_rows

        out, want = [], 0
        for _, row in iter_rows(self.source):
            if want < len(self.texts) and str(row.get(self.text_field, "")).strip() == self.texts[want].strip():
                out.append(dict(row))
                want += 1
        if want != len(self.texts):  # a reader rule we did not follow: fall back to what we know
            log.warning("explore: could not match %s's rows to the corpus; exporting texts only", self.source)
            return [{self.text_field: t} for t in self.texts]
        return out

    def _original_image_rows(self) -> list[dict[str, Any]]:
        """An index file's rows (every column, its own ``path`` spelling) matched to the images by resolved path;
        an image folder's images as {"path": absolute path}."""
        by_path: dict[str, dict[str, Any]] = {}
        if self.source is not None and self.source.is_file():
            from embtune.data.images import IMAGE_SUFFIXES, index_path
            from embtune.data.readers import iter_rows

            if self.source.suffix.lower() not in IMAGE_SUFFIXES:
                for _, row in iter_rows(self.source):
                    value = row.get("path")
                    if isinstance(value, str) and value.strip():
                        by_path.setdefault(str(index_path(self.source, value).resolve()), dict(row))
        return [by_path.get(p, {"path": p}) for p in self.texts]


def heldout_check(before: np.ndarray, base: np.ndarray, items: np.ndarray, names: np.ndarray) -> dict[str, Any]:
    """Is a re-tune better for these labels than the space they were made in (``before``, rows = the corpus)? The
    re-tune's ContrastiveTuner is fitted on the ``base`` vectors of 80 % of the labelled ``items`` (stratified by
    ``names`` where every label has two) and both spaces are scored on the other 20 %: the kNN accuracy (10
    neighbours, cosine) of the held-out items' labels from the fitted ones. Returns ``before``, ``after``, ``n``
    (items held out) and ``worse``: after is below before by more than two standard errors of the difference (two
    accuracies on n items), or ``skipped`` (why) with fewer than MIN_HELDOUT_LABELS labels.

    Only a clear loss counts as worse: labels made from suggested clusters are easy to tell apart in either space
    (held-out accuracy 0.986-1.0 on the five text sets of bench/labelling_effort.py), so small differences are noise. On
    StackOverflow a re-tune scored 0.9973 against 1.0 on 1,095 held-out labels and still cut the actions to label
    half the set from 92 to 63."""
    from embtune.evaluation.probes import holdout_split, knn_accuracy
    from embtune.tuners import ContrastiveTuner

    if len(items) < MIN_HELDOUT_LABELS:
        return {"skipped": f"{len(items)} manual labels; a held-out check needs {MIN_HELDOUT_LABELS}"}
    train, test = holdout_split(names, seed=0)
    trial = ContrastiveTuner(random_state=0).fit(base[items[train]], names[train])
    scores = {}
    for when, vectors in (("before", before[items]), ("after", trial.transform(base[items]))):
        scores[when] = round(knn_accuracy(vectors[train], names[train], vectors[test], names[test]), 4)
    n = len(test)
    noise = 2 * np.sqrt((scores["before"] * (1 - scores["before"]) + scores["after"] * (1 - scores["after"])) / n)
    return {**scores, "n": int(n), "worse": bool(scores["after"] < scores["before"] - noise)}


def open_session(corpus, output: str | Path, *, model: str | None = None, tuner: str | Path | None = None,
                 after: str | None = None, text_field: str = "text", label_field: str | None = None,
                 device: str = "auto", show_progress: bool | None = None, projection: str = "pca") -> ExploreSession:
    """Read ``corpus`` (texts, or images: a folder or an index file with a ``path`` field), encode it with ``model``
    (through the vector cache; the default follows the corpus) and, when given, with a tuner folder (``tuner``) or a
    fine-tuned model (``after``); map each space (``projection``: pca or umap); open the label log in ``output``."""
    from embtune.explore.maps import check_method

    from embtune.data.load import load_corpus
    from embtune.encoders import DEFAULT_MODEL, VectorCache, encoder_for
    from embtune.encoders.encode import encode_shown
    from embtune.tuners.folder import TunedEncoder, base_model_meta, tuner_and_base_model

    if tuner is not None and after is not None:
        raise EmbtuneError("--tuner and --after both name the 'after' space; give one of them")
    check_method(projection)  # before minutes of encoding, not after
    data = load_corpus(corpus, text_field, label_field, label_field is not None)
    cache = VectorCache()
    fitted = None
    if tuner is not None:
        fitted, model = tuner_and_base_model(str(tuner), model, cache, device)
    base = encoder_for(model or DEFAULT_MODEL, data, device=device, cache=cache)
    base_x = encode_shown(base, data.texts, "the corpus", cache=cache, show_progress=show_progress)
    before_xy = project(base_x, projection)
    spaces = [Space(base.name, base_x, before_xy)]
    if fitted is not None:
        tuned = l2_normalize(TunedEncoder(base, fitted, Path(tuner), cache).encode(data.texts))
        spaces.append(Space(f"{base.name} + {Path(tuner).name}", tuned, project(tuned, projection, init=before_xy)))
    elif after is not None:
        other = encoder_for(after, data, device=device, cache=cache)
        after_x = encode_shown(other, data.texts, "the corpus (after)", cache=cache, show_progress=show_progress)
        spaces.append(Space(other.name, after_x, project(after_x, projection, init=before_xy)))
    return ExploreSession(list(data.texts), spaces, Path(output), source=data.path, text_field=text_field,
                          given_labels=data.labels, base_vectors=base_x, base_meta=base_model_meta(base),
                          unit=data.unit, projection=projection)
