"""`embtune auto`: try label-free candidates within a time budget, keep the one a label-free criterion proves better on
held-out texts, or keep the base model when none is.

The corpus is split once (seeded) into a fit part and a held-out part. Every candidate (tuners on frozen vectors,
short full fine-tunes) learns from the fit part only; every space, the base model's included, is scored on the
held-out part with :mod:`embtune.evaluation.criterion` (silhouette x KMeans stability at one fixed k, with collapse
guards). Labels, when the corpus has them, are only ever used to *report* (V-measure on the held-out part), so the
report shows whether the label-free choice was right. ``auto.json`` is rewritten after every candidate: a crash or
Ctrl-C loses at most the candidate that was running.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embtune.errors import EmbtuneError
from embtune.outputs import is_embtune_folder, writes_output_folder

log = logging.getLogger(__name__)

AUTO_FILE = "auto.json"
MIN_TEXTS = 100  # below this a held-out part is too small to tell candidates apart
TEXTS_PER_CLUSTER = 10  # the criterion's k is the held-out size over this (at most MAX_K)
MAX_K = 200
MIN_FINETUNE_MINUTES = 1.0  # a fine-tune with less time than this is skipped rather than run for nothing


@dataclass(frozen=True)
class CandidateSpec:
    name: str
    kind: str  # "tuner" | "finetune"
    options: dict
    about: str

    @property
    def summary(self) -> str:
        """``about``, plus the pull towards the base model a fine-tune trains with (its option or the default)."""
        if self.kind != "finetune":
            return self.about
        from embtune.training.objectives import anchor_weight
        from embtune.training.objectives.anchor import describe_anchor

        anchor = anchor_weight(self.options["objective"], self.options.get("anchor"))
        return f"{self.about}, {describe_anchor(anchor)}" if anchor else self.about


CANDIDATES = {
    c.name: c
    for c in (
        CandidateSpec("tuner:infonce-neighbors", "tuner", {"method": "infonce", "positives": "neighbors"},
                      "InfoNCE head on frozen vectors, positives = nearest neighbours"),
        CandidateSpec("tuner:autoencoder", "tuner", {"method": "autoencoder"}, "denoising bottleneck on frozen vectors"),
        CandidateSpec("tuner:infonce-augment", "tuner", {"method": "infonce", "positives": "augment"},
                      "InfoNCE head on frozen vectors, positives = noisy views"),
        CandidateSpec("tuner:neighborhood", "tuner", {"method": "neighborhood"},
                      "each vector moved towards its close corpus neighbours (no training)"),
        CandidateSpec("tuner:spectral", "tuner", {"method": "spectral"},
                      "coordinates on the corpus's neighbour graph appended to each vector (no training)"),
        CandidateSpec("finetune:neighbors", "finetune", {"objective": "neighbors"},
                      "full fine-tune, positives from the model's own nearest neighbours"),
        CandidateSpec("finetune:neighbors+anchor", "finetune", {"objective": "neighbors", "anchor": 1.0},
                      "full fine-tune, positives from nearest neighbours"),
        CandidateSpec("finetune:sccl", "finetune", {"objective": "sccl"}, "instance contrast + clustering head"),
        CandidateSpec("finetune:pseudo", "finetune", {"objective": "pseudo"}, "KMeans pseudo-labels, supervised contrast"),
        CandidateSpec("finetune:augment", "finetune", {"objective": "augment"}, "SimCLR on augmented text views"),
        CandidateSpec("finetune:simcse", "finetune", {"objective": "simcse"}, "SimCSE, dropout as augmentation"),
        CandidateSpec("finetune:tsdae", "finetune", {"objective": "tsdae"}, "denoising auto-encoder (TSDAE)"),
        CandidateSpec("finetune:ct", "finetune", {"objective": "ct"}, "contrastive tension"),
    )
}
# Cheap tuners first, then fine-tunes in the order of what ../shared/FINDINGS.md found most likely to help.
DEFAULT_CANDIDATES = ("tuner:spectral", "tuner:neighborhood", "tuner:infonce-neighbors", "tuner:autoencoder", "tuner:infonce-augment",
                      "finetune:neighbors", "finetune:neighbors+anchor", "finetune:sccl", "finetune:augment",
                      "finetune:simcse")


@dataclass
class AutoResult:
    """What ``auto`` tried and chose. ``chosen`` is a candidate name or "base"; ``model_path`` is None for "base"."""

    output: Path
    base_model: str
    chosen: str
    reason: str
    model_path: Path | None
    k: int
    n_fit: int
    n_heldout: int
    seconds: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    labels_reported: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_model": self.base_model, "chosen": self.chosen, "reason": self.reason,
            "model_path": str(self.model_path) if self.model_path else None, "k": self.k, "n_fit": self.n_fit,
            "n_heldout": self.n_heldout, "seconds": round(self.seconds, 1), "labels_reported": self.labels_reported,
            "labels_used_to_choose": False, "candidates": self.candidates,
        }


def parse_candidates(names: str | list[str] | None) -> list[CandidateSpec]:
    """Candidate specs from a comma-separated string or a list (None: the default list)."""
    if names is None:
        names = list(DEFAULT_CANDIDATES)
    elif isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise EmbtuneError(f"--candidates: unknown {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    if not names:
        raise EmbtuneError("--candidates is empty; name at least one (or leave it out for the default list)")
    return [CANDIDATES[n] for n in dict.fromkeys(names)]


@writes_output_folder("auto", inputs=("corpus", "model"))
def auto(
    corpus,
    *,
    output: str | Path,
    model: str = "all-MiniLM-L6-v2",
    budget_minutes: float = 30.0,
    candidates: str | list[str] | None = None,
    text_field: str = "text",
    label_field: str | None = None,
    use_labels: bool = True,
    heldout_fraction: float = 0.2,
    max_heldout: int = 2000,
    finetune_steps: int = 200,
    batch_size: int = 32,
    seeds: int = 5,
    seed: int = 0,
    keep_candidates: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    cache: bool = True,
    show_progress: bool | None = None,
    write_report: bool = True,
) -> AutoResult:
    """Try ``candidates`` on ``corpus`` within ``budget_minutes`` and keep what a label-free criterion proves better
    on held-out texts (or the base model). Writes ``output/auto.json`` (every candidate's scores and times),
    ``output/model/`` (the chosen model or tuner; absent when the base model is kept) and ``output/report.html``.

    >>> result = embtune.auto("tickets.jsonl", output="auto/", budget_minutes=20)
    >>> result.chosen, result.model_path
    """
    import numpy as np

    from embtune.api import TUNING_FILE, _load_corpus, _open_cache, finetune, report
    from embtune.atomic import atomic_write_text
    from embtune.data.corpus import Corpus
    from embtune.data.vectors import nearest_neighbors
    from embtune.encoders import load_encoder
    from embtune.encoders.encode import encode_items
    from embtune.progress import task_progress
    from embtune.evaluation.clustering import cluster_metrics
    from embtune.evaluation.criterion import choose, guard, score_space
    from embtune.tuners.methods import make_tuner

    start = time.perf_counter()
    deadline = start + budget_minutes * 60
    specs = parse_candidates(candidates)
    if budget_minutes <= 0:
        raise EmbtuneError(f"--budget-minutes must be positive (got {budget_minutes})")
    output = Path(output)
    if (output / AUTO_FILE).is_file() and not overwrite:
        raise EmbtuneError(f"{output} already holds an auto run ({AUTO_FILE}); pass --overwrite to start over")
    for stale in ("model", "candidates"):  # an earlier auto run's; a user's own folder of that name stays
        if _written_by_embtune(output / stale):
            shutil.rmtree(output / stale)
        elif (output / stale).exists():
            raise EmbtuneError(f"{output / stale}: was not written by embtune, and auto writes its {stale} there; "
                               "move it away or choose another output folder")
    output.mkdir(parents=True, exist_ok=True)

    data = _load_corpus(corpus, text_field, label_field, use_labels)
    if data.unit == "images":
        raise EmbtuneError(
            f"{corpus}: embtune auto chooses among text candidates; for images run `embtune finetune {corpus} "
            "--objective simclr|moco|byol|autoencoder|inpaint -o OUT` and compare with `embtune evaluate --model OUT`"
        )
    if len(data) < MIN_TEXTS:
        raise EmbtuneError(f"{data.describe()}: auto needs at least {MIN_TEXTS} texts to hold some out and compare")
    # A plain random split: labels play no part in anything that decides.
    order = np.random.default_rng(seed).permutation(len(data))
    n_held = min(max_heldout, max(MIN_TEXTS // 5, int(round(heldout_fraction * len(data)))))
    held_idx, fit_idx = np.sort(order[:n_held]), np.sort(order[n_held:])
    fit_texts = [data.texts[i] for i in fit_idx]
    held_texts = [data.texts[i] for i in held_idx]
    held_labels = np.asarray(data.labels)[held_idx] if data.labels is not None else None

    vector_cache = _open_cache(cache)
    encoder = load_encoder(model, device=device, cache=vector_cache)
    with task_progress("encoding with the base model", len(data), show_progress) as advance:
        base_vectors, _ = encode_items(encoder, data.texts, cache=vector_cache, on_progress=advance)
    fit_x, held_x = base_vectors[fit_idx], base_vectors[held_idx]
    # One k for every space: about ten held-out texts per cluster, fine enough to see the neighbourhoods that
    # retrieval and intent-like groups live in. (The best-silhouette k is often 2-5 on real corpora: too coarse to
    # tell a sharper space from a blurrier one.)
    k = int(min(MAX_K, max(2, n_held // TEXTS_PER_CLUSTER)))
    n_classes = len(set(held_labels.tolist())) if held_labels is not None else 0

    def label_view(vectors) -> dict[str, float]:
        """Label metrics on the held-out texts alone (no encoding of the fit part needed): KMeans V-measure at
        k = number of labels, and leave-one-out 10-nearest-neighbour accuracy among the held-out texts."""
        if held_labels is None or not 2 <= n_classes < len(vectors):
            return {}
        v = cluster_metrics(vectors, n_classes, seeds=seeds, labels=held_labels)["v_measure"]
        _, codes = np.unique(held_labels, return_inverse=True)
        vote_codes = codes[nearest_neighbors(vectors, 10)]
        predicted = np.array([np.bincount(row, minlength=codes.max() + 1).argmax() for row in vote_codes])
        return {"v_measure": float(np.mean(v)), "v_measure_std": float(np.std(v)),
                "knn_accuracy": float(np.mean(predicted == codes))}

    base_score = score_space(held_x, k, seeds=seeds)
    rows: list[dict[str, Any]] = [{
        "name": "base", "kind": "base", "summary": f"{encoder.name} as it is", "status": "scored", "seconds": 0.0,
        **_rounded(base_score.to_dict()), **_rounded(label_view(held_x)),
    }]
    result = AutoResult(output=output, base_model=encoder.name, chosen="base", reason="running", model_path=None, k=k,
                        n_fit=len(fit_texts), n_heldout=n_held, seconds=0.0, candidates=rows,
                        labels_reported=held_labels is not None)
    scores = {"base": base_score}

    def save_progress() -> None:
        result.seconds = time.perf_counter() - start
        atomic_write_text(output / AUTO_FILE, json.dumps(result.to_dict(), indent=2, default=str) + "\n")

    save_progress()
    log.info("auto: %d texts to fit, %d held out; criterion at k=%d; base score %.4f ± %.4f; budget %.0f min",
             len(fit_texts), n_held, k, base_score.score, base_score.std, budget_minutes)
    finetunes_left = sum(s.kind == "finetune" for s in specs)
    for spec in specs:
        row: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "summary": spec.summary}
        rows.append(row)
        left_min = (deadline - time.perf_counter()) / 60
        share = left_min / max(finetunes_left, 1) if spec.kind == "finetune" else left_min
        if spec.kind == "finetune":
            finetunes_left -= 1
        if left_min <= 0 or (spec.kind == "finetune" and share < MIN_FINETUNE_MINUTES):
            row.update(status="skipped", reason=f"budget: {max(left_min, 0):.1f} min left")
            log.info("auto: %s skipped (%.1f min of budget left)", spec.name, max(left_min, 0))
            save_progress()
            continue
        folder = _candidate_folder(output, spec.name)
        began = time.perf_counter()
        log.info("auto: %s (%s)", spec.name, spec.summary)
        try:
            if spec.kind == "tuner":
                options = dict(spec.options)
                tuner = make_tuner(options.pop("method"), random_state=seed, device=device, **options)
                tuner.fit(fit_x)
                held_new = tuner.transform(held_x)
                tuner.save(folder)
                meta = {"base_model": encoder.name, "base_model_fingerprint": encoder.fingerprint,
                        "base_model_path": str(getattr(encoder, "path", "")), "method": spec.options["method"],
                        "made_by": f"embtune auto ({spec.name})", "n_fit": len(fit_texts), "seed": seed}
                atomic_write_text(folder / TUNING_FILE, json.dumps(meta, indent=2, default=str) + "\n")
            else:
                # leave room for exporting the model and encoding the held-out texts after training
                overhead_min = (20 + n_held / 100) / 60
                params = {"anchor": spec.options["anchor"]} if "anchor" in spec.options else None
                run = finetune(
                    fit_texts, objective=spec.options["objective"], model=model, output=folder,
                    max_steps=finetune_steps, batch_size=batch_size, eval_every=max(1, finetune_steps // 4),
                    max_minutes=max(share - overhead_min, 0.25), objective_params=params, use_labels=False,
                    overwrite=True, seed=seed, device=device, show_progress=show_progress, write_report=False,
                )
                shutil.rmtree(folder / "checkpoints", ignore_errors=True)
                row.update(steps=run.steps, stopped=run.stopped)
                tuned = load_encoder(str(folder), device=device, cache=None)
                held_new, _ = encode_items(tuned, held_texts)
        except (EmbtuneError, RuntimeError, ValueError) as e:
            row.update(status="failed", reason=str(e).splitlines()[0][:300], seconds=round(time.perf_counter() - began, 1))
            log.warning("auto: %s failed: %s", spec.name, e)
            shutil.rmtree(folder, ignore_errors=True)
            save_progress()
            continue
        score = guard(score_space(held_new, k, seeds=seeds), base_score)
        scores[spec.name] = score
        row.update(status="rejected" if score.rejected else "scored", seconds=round(time.perf_counter() - began, 1),
                   **_rounded(score.to_dict()), **_rounded(label_view(held_new)))
        if score.rejected:
            row["reason"] = score.rejected
        # From the stored (rounded) figures, so the log, auto.json and the printed table show the same digits.
        log.info("auto: %s score %.4f ± %.4f (base %.4f)%s", spec.name, row["score"], row["std"], rows[0]["score"],
                 f" rejected: {score.rejected}" if score.rejected else "")
        save_progress()

    # The choice: the best guarded score, if it beats the base model by more than the KMeans-seed noise.
    scored = {r["name"]: scores[r["name"]] for r in rows[1:] if r.get("status") == "scored"}
    result.chosen, result.reason = choose(base_score, scored)
    for r in rows:
        r["chosen"] = r["name"] == result.chosen
    # the report's 'after' side: the choice, or the best-scoring candidate when the base model is kept
    shown = result.chosen if result.chosen != "base" else max(scored, key=lambda n: scored[n].score, default=None)
    if result.chosen != "base":
        result.model_path = output / "model"
        shutil.move(str(_candidate_folder(output, result.chosen)), result.model_path)
    save_progress()

    if write_report and shown is not None:
        after = result.model_path or _candidate_folder(output, shown)
        note = (f"embtune auto chose {result.chosen}: it {result.reason}." if result.chosen != "base" else
                f"embtune auto kept the base model: {result.reason}. The 'after' side shows the best candidate, "
                "which was not chosen.")
        held_corpus = Corpus(texts=held_texts, labels=list(held_labels) if held_labels is not None else None)
        report(held_corpus, before=model, after=after, output=output / "report.html", seeds=seeds, seed=seed,
               device=device, cache=vector_cache, title=f"embtune auto: {encoder.name} → {result.chosen}",
               notes=[note, f"Scored on {n_held} held-out texts that no candidate trained on."],
               tables=[candidate_table(result)])
    if not keep_candidates:
        shutil.rmtree(output / "candidates", ignore_errors=True)
    save_progress()
    return result


def candidate_table(result: AutoResult):
    """The candidates as a table for the report."""
    from embtune.report.html import Table

    header = ["candidate", "status", "criterion", "silhouette", "stability", "eff. rank", "spread", "seconds"]
    if result.labels_reported:
        header += ["V-measure (labels, report only)", "kNN accuracy (labels, report only)"]
    rows = []
    for r in result.candidates:
        cells = [r["name"] + ("  ← chosen" if r.get("chosen") else ""), r.get("status", ""),
                 f"{r['score']:.4f} ± {r['std']:.4f}" if "score" in r else "",
                 f"{r['silhouette']:.4f}" if "silhouette" in r else "", f"{r['stability']:.3f}" if "stability" in r else "",
                 f"{r['effective_rank']:.1f}" if "effective_rank" in r else "", f"{r['spread']:.3f}" if "spread" in r else "",
                 f"{r.get('seconds', 0):.0f}"]
        if result.labels_reported:
            cells.append(f"{100 * r['v_measure']:.2f} ± {100 * r['v_measure_std']:.2f}" if "v_measure" in r else "")
            cells.append(f"{100 * r['knn_accuracy']:.2f}" if "knn_accuracy" in r else "")
        rows.append(cells)
    caption = (f"criterion = KMeans(k={result.k}) cosine silhouette x stability (mean ARI between seeds), mean ± std "
               "over seeds, on the held-out texts; a candidate whose effective rank or spread fell below a quarter of "
               "the base model's is rejected as collapsed; the winner must beat the base model by more than the noise."
               + (" Labels were used only for the last two columns (on the held-out texts; kNN is leave-one-out among "
                  "them), never to choose." if result.labels_reported else ""))
    return Table(title="Candidates", header=header, rows=rows, caption=caption)


def _written_by_embtune(folder: Path) -> bool:
    """An earlier auto run's model/ or candidates/ folder: embtune's own, or a folder of embtune's own folders."""
    if not folder.is_dir():
        return False
    return is_embtune_folder(folder) or all(p.is_dir() and is_embtune_folder(p) for p in folder.iterdir())


def _candidate_folder(output: Path, name: str) -> Path:
    """Where a candidate is written while auto runs: its name with ':' and '+' made path-safe."""
    return output / "candidates" / name.replace(":", "-").replace("+", "-")


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if key == "per_seed":
            continue
        out[key] = round(value, 5) if isinstance(value, float) else value
    return out
