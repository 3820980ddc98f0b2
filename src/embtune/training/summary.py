"""One record of a finished training run, for the torch trainer and the TensorFlow loop alike: the ``embtune.json``
summary written beside the exported model, and the :class:`FinetuneResult` the public function returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: importing the trainer loads torch (~1 s), which `encode` may not need
    from embtune.training.trainer import EvalSet, TrainConfig, TrainResult


@dataclass
class FinetuneResult:
    """Where the model went, how training ended, and the held-out metrics at the start and for the kept weights."""

    output: Path
    objective: str
    base_model: str
    steps: int
    kept_step: int
    stopped: str
    seconds: float
    n_train: int
    n_eval: int
    before: dict[str, float]
    after: dict[str, float]
    history: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        delta = {k: self.after[k] - v for k, v in self.before.items() if k in self.after}
        return {
            "output": str(self.output), "objective": self.objective, "base_model": self.base_model,
            "steps": self.steps, "kept_step": self.kept_step, "stopped": self.stopped, "seconds": round(self.seconds, 1),
            "n_train": self.n_train, "n_eval": self.n_eval, "before": self.before, "after": self.after, "delta": delta,
            "history": self.history,
        }


def run_summary(result: TrainResult, config: TrainConfig, *, base_model: str, base_model_path: str, objective: str,
                objective_summary: str, corpus: str, n_train: int, eval_set: EvalSet | None, after: dict[str, float],
                seed: int, output: Path, **extra) -> dict[str, Any]:
    """The ``embtune.json`` of a run (``extra``: anchor, modality, backend, resolution, ...)."""
    return {
        "base_model": base_model, "base_model_path": base_model_path, "objective": objective,
        "objective_summary": objective_summary, **extra, "corpus": corpus, "n_train": n_train,
        "n_eval": len(eval_set.texts) if eval_set else 0, "steps": result.steps, "kept_step": result.kept_step,
        "stopped": result.stopped, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "seed": seed, "seconds": result.seconds, "output": str(output), "before": result.initial, "after": after,
        "history": result.history, "losses": result.losses, "config": asdict(config),
    }


def finetune_result(summary: dict[str, Any], *, base_model: str | None = None) -> FinetuneResult:
    """The public result of a run, from its summary (``base_model`` overrides the summary's name for display)."""
    return FinetuneResult(
        output=Path(summary["output"]), objective=summary["objective"], base_model=base_model or summary["base_model"],
        steps=summary["steps"], kept_step=summary["kept_step"], stopped=summary["stopped"], seconds=summary["seconds"],
        n_train=summary["n_train"], n_eval=summary["n_eval"], before=summary["before"], after=summary["after"],
        history=summary["history"],
    )
