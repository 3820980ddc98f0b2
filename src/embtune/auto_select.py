"""`embtune auto`: try label-free candidates within a time budget, keep the one a label-free criterion proves better on
held-out texts, or keep the base model when none is.

The corpus is split once (seeded) into a fit part and a held-out part. Every candidate (tuners on frozen vectors,
short full fine-tunes) learns from the fit part only; every space, the base model's included, is scored on the
held-out part with :mod:`embtune.evaluation.criterion` (how well its KMeans clusters keep the base model's nearest
neighbours together, over a grid of k, with collapse guards). Labels, when the corpus has them, are only ever used to *report* (V-measure on the held-out part), so the
report shows whether the label-free choice was right. ``auto.json`` is rewritten after every candidate: a crash or
Ctrl-C loses at most the candidate that was running.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embtune.candidates import (  # the names `embtune.auto_select` has always offered, too
    CANDIDATES,
    DEFAULT_CANDIDATES,
    AutoContext,
    AutoResult,
    CandidateSpec,
    candidate_folder,
    candidate_table,
    parse_candidates,
    report_table,
    run_finetune,
    run_tuner,
    written_by_embtune,
)
from embtune.errors import EmbtuneError
from embtune.outputs import writes_output_folder
from embtune.tuners.folder import AUTO_FILE

log = logging.getLogger(__name__)

__all__ = ["AUTO_FILE", "CANDIDATES", "DEFAULT_CANDIDATES", "AutoResult", "CandidateSpec", "auto", "candidate_table",
           "parse_candidates"]

MIN_TEXTS = 100  # below this a held-out part is too small to tell candidates apart
TEXTS_PER_CLUSTER = 10  # the criterion's k is the held-out size over this (at most MAX_K)
MAX_K = 200
MIN_FINETUNE_MINUTES = 1.0  # a fine-tune with less time than this is skipped rather than run for nothing


@writes_output_folder("auto", inputs=("corpus", "model"))
def auto(
    corpus, *, output: str | Path, model: str = "all-MiniLM-L6-v2", budget_minutes: float = 30.0,
    candidates: str | list[str] | None = None, text_field: str = "text", label_field: str | None = None,
    use_labels: bool = True, heldout_fraction: float = 0.2, max_heldout: int = 2000, finetune_steps: int = 200,
    batch_size: int = 32, seeds: int = 5, seed: int = 0, keep_candidates: bool = False, overwrite: bool = False,
    device: str = "auto", cache: bool = True, show_progress: bool | None = None, write_report: bool = True,
) -> AutoResult:
    """Try ``candidates`` on ``corpus`` within ``budget_minutes`` and keep what a label-free criterion proves better
    on held-out texts (or the base model). Writes ``output/auto.json`` (every candidate's scores and times),
    ``output/model/`` (the chosen model or tuner; absent when the base model is kept) and ``output/report.html``.

    >>> result = embtune.auto("tickets.jsonl", output="auto/", budget_minutes=20)
    >>> result.chosen, result.model_path
    """
    from embtune.encoders import load_encoder, open_cache
    from embtune.encoders.encode import encode_shown

    run = AutoRun(Path(output), budget_minutes, seeds)
    specs = parse_candidates(candidates)
    if budget_minutes <= 0:
        raise EmbtuneError(f"--budget-minutes must be positive (got {budget_minutes})")
    _clear_earlier_run(run.output, overwrite)
    data = _auto_corpus(corpus, text_field, label_field, use_labels)
    held_idx, fit_idx = _split(len(data), heldout_fraction, max_heldout, seed)
    vector_cache = open_cache(cache)
    encoder = load_encoder(model, device=device, cache=vector_cache)
    base = encode_shown(encoder, data.texts, "with the base model", cache=vector_cache, show_progress=show_progress)
    ctx = AutoContext(model=model, encoder=encoder, fit_texts=[data.texts[i] for i in fit_idx],
                      held_texts=[data.texts[i] for i in held_idx], fit_x=base[fit_idx], held_x=base[held_idx],
                      seed=seed, device=device, finetune_steps=finetune_steps, batch_size=batch_size,
                      show_progress=show_progress)
    run.start(ctx, np.asarray(data.labels)[held_idx] if data.labels is not None else None)
    finetunes_left = sum(s.kind == "finetune" for s in specs)
    for spec in specs:  # a fine-tune's share of the time left counts itself and the fine-tunes after it
        run.try_candidate(spec, finetunes_left)
        finetunes_left -= spec.kind == "finetune"
    shown = run.choose()
    if write_report and shown is not None:
        run.write_report(shown, vector_cache)
    if not keep_candidates:
        shutil.rmtree(run.output / "candidates", ignore_errors=True)
    run.save()
    return run.result


def _clear_earlier_run(output: Path, overwrite: bool) -> None:
    """Refuse an earlier auto run's folder unless ``overwrite``; remove its model/ and candidates/ (embtune's own only)."""
    if (output / AUTO_FILE).is_file() and not overwrite:
        raise EmbtuneError(f"{output} already holds an auto run ({AUTO_FILE}); pass --overwrite to start over")
    for stale in ("model", "candidates"):  # an earlier auto run's; a user's own folder of that name stays
        if written_by_embtune(output / stale):
            shutil.rmtree(output / stale)
        elif (output / stale).exists():
            raise EmbtuneError(f"{output / stale}: was not written by embtune, and auto writes its {stale} there; "
                               "move it away or choose another output folder")
    output.mkdir(parents=True, exist_ok=True)


def _auto_corpus(corpus, text_field: str, label_field: str | None, use_labels: bool):
    from embtune.data.load import load_corpus

    data = load_corpus(corpus, text_field, label_field, use_labels)
    if data.unit == "images":
        raise EmbtuneError(
            f"{corpus}: embtune auto chooses among text candidates; for images run `embtune finetune {corpus} "
            "--objective simclr|moco|byol|autoencoder|inpaint -o OUT` and compare with `embtune evaluate --model OUT`"
        )
    if len(data) < MIN_TEXTS:
        raise EmbtuneError(f"{data.describe()}: auto needs at least {MIN_TEXTS} texts to hold some out and compare")
    return data


def _split(n: int, heldout_fraction: float, max_heldout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, fit rows): a plain seeded random split; labels play no part in anything that decides."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = min(max_heldout, max(MIN_TEXTS // 5, int(round(heldout_fraction * n))))
    return np.sort(order[:n_held]), np.sort(order[n_held:])


@dataclass
class AutoRun:
    """One auto run's state: the rows of auto.json (rewritten after every candidate), the guarded scores, the clock."""

    output: Path
    budget_minutes: float
    seeds: int

    def __post_init__(self):
        self.began = time.perf_counter()
        self.deadline = self.began + self.budget_minutes * 60

    def start(self, ctx: AutoContext, held_labels) -> None:
        """Score the base model on the held-out texts and write the first auto.json."""
        from embtune.evaluation.criterion import referee_neighbours, score_space, structure_missing

        self.ctx, self.held_labels = ctx, held_labels
        # One k for every space: about ten held-out texts per cluster, fine enough to see the neighbourhoods that
        # retrieval and intent-like groups live in. (The best-silhouette k is often 2-5 on real corpora: too coarse to
        # tell a sharper space from a blurrier one.)
        n_held = len(ctx.held_texts)
        self.k = int(min(MAX_K, max(2, n_held // TEXTS_PER_CLUSTER)))
        self.referee = referee_neighbours(ctx.held_x)  # every space is judged by the base model's neighbourhoods
        self.base_score = score_space(ctx.held_x, self.k, seeds=self.seeds, referee=self.referee, own=self.referee)
        self.scores = {"base": self.base_score}
        rows: list[dict[str, Any]] = [{
            "name": "base", "kind": "base", "summary": f"{ctx.encoder.name} as it is", "status": "scored",
            "seconds": 0.0, **_rounded(self.base_score.to_dict()), **_rounded(self.label_view(ctx.held_x)),
        }]
        self.result = AutoResult(output=self.output, base_model=ctx.encoder.name, chosen="base", reason="running",
                                 model_path=None, k=self.k, n_fit=len(ctx.fit_texts), n_heldout=n_held, seconds=0.0,
                                 candidates=rows, labels_reported=held_labels is not None,
                                 criterion_ks=list(self.base_score.ks or []))
        self.save()
        log.info("auto: %d texts to fit, %d held out; criterion over k=%s (silhouette shown at k=%d); base score "
                 "%.4f ± %.4f; budget %.0f min", len(ctx.fit_texts), n_held, "/".join(map(str, self.base_score.ks)),
                 self.k, self.base_score.score, self.base_score.std, self.budget_minutes)
        self.no_structure = structure_missing(self.base_score)
        if self.no_structure:  # the verdict is known now: training candidates would spend the budget for nothing
            log.warning("auto: keeping the base model without training any candidate: %s", self.no_structure)

    def label_view(self, vectors) -> dict[str, float]:
        from embtune.evaluation.probes import heldout_label_view

        return heldout_label_view(vectors, self.held_labels, seeds=self.seeds)

    def save(self) -> None:
        from embtune.atomic import atomic_write_text

        self.result.seconds = time.perf_counter() - self.began
        atomic_write_text(self.output / AUTO_FILE, json.dumps(self.result.to_dict(), indent=2, default=str) + "\n")

    def try_candidate(self, spec: CandidateSpec, finetunes_left: int) -> None:
        """Run one candidate within its share of the time left, score it, record it (skipped, failed, rejected or
        scored) in auto.json."""
        row: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "summary": spec.summary}
        self.result.candidates.append(row)
        if self.no_structure:
            row.update(status="skipped", reason="not run: the base space has no cluster structure to judge it by")
            return self.save()
        left_min = (self.deadline - time.perf_counter()) / 60
        share = left_min / max(finetunes_left, 1) if spec.kind == "finetune" else left_min
        if left_min <= 0 or (spec.kind == "finetune" and share < MIN_FINETUNE_MINUTES):
            row.update(status="skipped", reason=f"budget: {max(left_min, 0):.1f} min left")
            log.info("auto: %s skipped (%.1f min of budget left)", spec.name, max(left_min, 0))
            return self.save()
        folder = candidate_folder(self.output, spec.name)
        began = time.perf_counter()
        log.info("auto: %s (%s)", spec.name, spec.summary)
        try:
            if spec.kind == "tuner":
                held_new, facts = run_tuner(spec, self.ctx, folder)
            else:
                held_new, facts = run_finetune(spec, self.ctx, folder, share)
        except (EmbtuneError, RuntimeError, ValueError) as e:
            row.update(status="failed", reason=str(e).splitlines()[0][:300], seconds=round(time.perf_counter() - began, 1))
            log.warning("auto: %s failed: %s", spec.name, e)
            shutil.rmtree(folder, ignore_errors=True)
            return self.save()
        self._score(spec, row, held_new, facts, time.perf_counter() - began)

    def _score(self, spec: CandidateSpec, row: dict, held_new, facts: dict, seconds: float) -> None:
        from embtune.evaluation.criterion import guard, score_space

        score = guard(score_space(held_new, self.k, seeds=self.seeds, referee=self.referee), self.base_score)
        self.scores[spec.name] = score
        row.update(**facts, status="rejected" if score.rejected else "scored", seconds=round(seconds, 1),
                   **_rounded(score.to_dict()), **_rounded(self.label_view(held_new)))
        if score.rejected:
            row["reason"] = score.rejected
        # From the stored (rounded) figures, so the log, auto.json and the printed table show the same digits.
        log.info("auto: %s score %.4f ± %.4f (base %.4f)%s", spec.name, row["score"], row["std"],
                 self.result.candidates[0]["score"], f" rejected: {score.rejected}" if score.rejected else "")
        self.save()

    def choose(self) -> str | None:
        """The best guarded score, if it beats the base model by more than the KMeans-seed noise; moves it to
        ``model/``. Returns the candidate the report shows (the choice, or the best-scoring one when the base stays)."""
        from embtune.evaluation.criterion import choose

        rows = self.result.candidates
        scored = {r["name"]: self.scores[r["name"]] for r in rows[1:] if r.get("status") == "scored"}
        self.result.chosen, self.result.reason = choose(self.base_score, scored)
        for r in rows:
            r["chosen"] = r["name"] == self.result.chosen
        shown = self.result.chosen if self.result.chosen != "base" else max(scored, key=lambda n: scored[n].score, default=None)
        if self.result.chosen != "base":
            self.result.model_path = self.output / "model"
            shutil.move(str(candidate_folder(self.output, self.result.chosen)), self.result.model_path)
        self.save()
        return shown

    def write_report(self, shown: str, vector_cache) -> None:
        """report.html: the base model vs the choice (or the best candidate) on the held-out texts, with the table."""
        from embtune.api import report
        from embtune.data.corpus import Corpus

        result, labels = self.result, self.held_labels
        after = result.model_path or candidate_folder(self.output, shown)
        note = (f"embtune auto chose {result.chosen}: it {result.reason}." if result.chosen != "base" else
                f"embtune auto kept the base model: {result.reason}. The 'after' side shows the best candidate, "
                "which was not chosen.")
        held_corpus = Corpus(texts=self.ctx.held_texts, labels=list(labels) if labels is not None else None)
        report(held_corpus, before=self.ctx.model, after=after, output=self.output / "report.html", seeds=self.seeds,
               seed=self.ctx.seed, device=self.ctx.device, cache=vector_cache,
               title=f"embtune auto: {result.base_model} → {result.chosen}",
               notes=[note, f"Scored on {result.n_heldout} held-out texts that no candidate trained on."],
               tables=[report_table(result)])


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if key == "per_seed":
            continue
        out[key] = round(value, 5) if isinstance(value, float) else value
    return out
