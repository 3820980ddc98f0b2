"""The candidates `embtune auto` tries: what each is, how it runs on the fit part of the corpus, and the one table
of their scores that the CLI prints and the HTML report shows."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embtune.errors import EmbtuneError
from embtune.outputs import is_embtune_folder


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
        CandidateSpec("finetune:distill", "finetune", {"objective": "distill"},
                      "full fine-tune that learns the spectral tuner's similarities (its gain, no stored corpus)"),
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
    criterion_ks: list[int] = field(default_factory=list)  # the KMeans k the criterion was measured at

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_model": self.base_model, "chosen": self.chosen, "reason": self.reason,
            "model_path": str(self.model_path) if self.model_path else None, "k": self.k, "n_fit": self.n_fit,
            "n_heldout": self.n_heldout, "seconds": round(self.seconds, 1), "labels_reported": self.labels_reported,
            "labels_used_to_choose": False, "criterion_ks": self.criterion_ks, "candidates": self.candidates,
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



@dataclass
class AutoContext:
    """What every candidate runs with: the base model's vectors of both parts, the texts, and the run's settings."""

    model: str
    encoder: Any
    fit_texts: list[str]
    held_texts: list[str]
    fit_x: Any
    held_x: Any
    seed: int
    device: str
    finetune_steps: int
    batch_size: int
    show_progress: bool | None


def candidate_folder(output: Path, name: str) -> Path:
    """Where a candidate is written while auto runs: its name with ':' and '+' made path-safe."""
    return output / "candidates" / name.replace(":", "-").replace("+", "-")


def written_by_embtune(folder: Path) -> bool:
    """An earlier auto run's model/ or candidates/ folder: embtune's own, or a folder of embtune's own folders."""
    if not folder.is_dir():
        return False
    return is_embtune_folder(folder) or all(p.is_dir() and is_embtune_folder(p) for p in folder.iterdir())


def run_tuner(spec: CandidateSpec, ctx: AutoContext, folder: Path) -> tuple[Any, dict]:
    """Fit the tuner on the fit part, save it (with its tuning.json) to ``folder``; (held-out vectors, row facts)."""
    from embtune.tuners.folder import base_model_meta, save_tuner_folder
    from embtune.tuners.methods import make_tuner

    options = dict(spec.options)
    tuner = make_tuner(options.pop("method"), random_state=ctx.seed, device=ctx.device, **options)
    tuner.fit(ctx.fit_x)
    save_tuner_folder(tuner, folder, {**base_model_meta(ctx.encoder), "method": spec.options["method"],
                                      "made_by": f"embtune auto ({spec.name})", "n_fit": len(ctx.fit_texts),
                                      "seed": ctx.seed})
    return tuner.transform(ctx.held_x), {}


def run_finetune(spec: CandidateSpec, ctx: AutoContext, folder: Path, minutes: float) -> tuple[Any, dict]:
    """Fine-tune on the fit texts within ``minutes`` (leaving room to export and encode), export to ``folder``;
    (held-out vectors, row facts: steps and why it stopped)."""
    from embtune.api import finetune
    from embtune.encoders import load_encoder
    from embtune.encoders.encode import encode_items

    overhead_min = (20 + len(ctx.held_texts) / 100) / 60
    params = {"anchor": spec.options["anchor"]} if "anchor" in spec.options else None
    run = finetune(ctx.fit_texts, objective=spec.options["objective"], model=ctx.model, output=folder,
                   max_steps=ctx.finetune_steps, batch_size=ctx.batch_size, eval_every=max(1, ctx.finetune_steps // 4),
                   max_minutes=max(minutes - overhead_min, 0.25), objective_params=params, use_labels=False,
                   overwrite=True, seed=ctx.seed, device=ctx.device, show_progress=ctx.show_progress,
                   write_report=False)
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    held, _ = encode_items(load_encoder(str(folder), device=ctx.device, cache=None), ctx.held_texts)
    return held, {"steps": run.steps, "stopped": run.stopped}


CANDIDATE_COLUMNS = ["candidate", "status", "criterion", "kept", "sil", "stab", "rank", "spread", "secs"]
LABEL_COLUMNS = ["V (lab)", "kNN (lab)"]


def _cell(row: dict, key: str, fmt: str, scale: float = 1.0) -> str:
    return format(scale * row[key], fmt) if row.get(key) is not None else ""


def _ks(ks: list[int]) -> str:
    return "/".join(map(str, ks)) if ks else "?"


def candidate_table(result: AutoResult) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, caption) of the candidates: the one table the CLI prints and the report shows."""
    header = CANDIDATE_COLUMNS + (LABEL_COLUMNS if result.labels_reported else [])
    rows = []
    for r in result.candidates:
        cells = [("→ " if r.get("chosen") else "") + r["name"], r.get("status", ""),
                 f"{r['score']:.4f}±{r['std']:.4f}" if "score" in r else "", _cell(r, "kept", ".2f"),
                 _cell(r, "silhouette", ".3f"),
                 _cell(r, "stability", ".2f"), _cell(r, "effective_rank", ".0f"), _cell(r, "spread", ".3f"),
                 f"{r.get('seconds', 0):.0f}"]
        if result.labels_reported:
            cells.append(f"{100 * r['v_measure']:.1f}±{100 * r['v_measure_std']:.1f}" if "v_measure" in r else "")
            cells.append(_cell(r, "knn_accuracy", ".1f", 100))
        rows.append(cells)
    caption = (f"→ marks the choice. status: scored, rejected (collapsed, see below), skipped (budget or no structure) or "
               f"failed; secs: seconds to fit it and encode the held-out texts with it. criterion: the share of each held-out text's 10 nearest neighbours in the base "
               f"model's space that its KMeans cluster in this space keeps (k = {_ks(result.criterion_ks)}), mean±std over seeds, on the "
               f"{result.n_heldout} held-out texts; sil, stab: cosine silhouette and stability (mean ARI between seeds) "
               f"of KMeans(k={result.k}), shown, not used; rank: effective rank, spread: 1 - mean cosine; a candidate whose rank or spread fell below a quarter of the base "
               "model's is rejected as collapsed; the winner must beat the base model by more than the noise; among the "
               "candidates that do, one within the noise of the top score wins if its kept is higher (kept: the share "
               "of each held-out text's 10 base-space neighbours still among its 10 nearest here)."
               + (" V (lab), kNN (lab): V-measure and leave-one-out 10-NN accuracy (x100) against the held-out labels, "
                  "shown to check the choice, never used to make it." if result.labels_reported else ""))
    return header, rows, caption


def report_table(result: AutoResult):
    """The candidate table as the HTML report's :class:`~embtune.report.html.Table`."""
    from embtune.report.html import Table

    header, rows, caption = candidate_table(result)
    return Table(title="Candidates", header=header, rows=rows, caption=caption)


def labels_verdict(result: AutoResult) -> str | None:
    """What the held-out labels (never used to choose) say of the choice, when a candidate was chosen and labels
    were reported: confirmed, refuted, or within the KMeans seed spread."""
    if result.model_path is None or not result.labels_reported:
        return None
    chosen = next(r for r in result.candidates if r.get("chosen"))
    base = result.candidates[0]
    if "v_measure" not in chosen or "v_measure" not in base:
        return None
    gap = 100 * (chosen["v_measure"] - base["v_measure"])
    spread = 100 * max(chosen.get("v_measure_std", 0.0), base.get("v_measure_std", 0.0))
    verdict = ("within the KMeans seed spread, so the intents neither confirm nor refute the choice"
               if abs(gap) <= 2 * spread else "the intents confirm the choice" if gap > 0
               else "the intents say the choice was wrong")
    return (f"Its held-out V-measure {100 * chosen['v_measure']:.1f} vs the base model's "
            f"{100 * base['v_measure']:.1f} ({verdict})")
