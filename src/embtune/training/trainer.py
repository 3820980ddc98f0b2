"""The one training loop. Objectives turn batches into losses; everything else happens here:

Items in a seeded order per epoch, batched by similar length where the objective allows it or as runs of one label
where it asks for them (:mod:`embtune.training.batches`); AdamW with warm-up and linear decay, gradient accumulation,
clipping, mixed precision on GPU (bf16 on the CPU when asked), a progress bar with the
loss and steps/s, evaluation on a held-out slice every ``eval_every`` steps (label-free metrics, plus labels / STS when
given), early stopping on a chosen metric with keep-best, atomic checkpoints every ``checkpoint_every`` steps that
``resume`` continues exactly (weights, optimizer, scheduler, random states, position in the data), a time budget,
and two guards: a non-finite loss stops the run with the last good checkpoint intact, and a collapsing space (the
spread 1 - mean pairwise cosine, or the effective rank, falling below a quarter of where it started) stops it before
more damage is done and goes back to the last healthy checkpoint. Under ``torchrun`` the same loop runs data-parallel
(see :mod:`embtune.training.distributed`): ``batch_size`` is the global batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embtune.errors import EmbtuneError
from embtune.evaluation.metrics import METRIC_INFO
from embtune.evaluation.monitor import training_metrics
from embtune.training import distributed
from embtune.training.batches import epoch_order, item_lengths
from embtune.training.objectives.base import encode_frozen
from embtune.training.checkpoint import (
    TrainState,
    checkpoint_for_step,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How to train. ``max_steps`` wins over ``epochs``; None for eval/checkpoint intervals means about 10 per run."""

    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 32
    grad_accum: int = 1
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    early_stopping_metric: str | None = None
    patience: int = 3
    max_minutes: float | None = None
    seed: int = 0
    mixed_precision: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU), "off", "bf16" (CUDA or CPU), "fp16"
    length_grouped: bool | None = None  # batches of similar-length texts (training/batches.py); None: the objective's
    collapse_ratio: float = 0.25  # collapse: spread (1 - mean cosine) or effective rank below this share of the start

    def total_steps(self, n_items: int) -> int:
        if self.max_steps is not None:
            return int(self.max_steps)
        per_epoch = math.ceil(n_items / (self.batch_size * self.grad_accum))
        return max(1, int(math.ceil(per_epoch * self.epochs)))


@dataclass
class EvalSet:
    """Held-out data the run is watched on (never trained on)."""

    texts: list[str]
    labels: list[str] | None = None
    k: int | None = None
    view_texts: list[str] | None = None  # augmented copies of ``texts`` for alignment
    sts: tuple[list[str], list[str], np.ndarray] | None = None


@dataclass
class TrainResult:
    steps: int
    stopped: str  # "finished", "early stopping", "time budget", "collapse"
    kept_step: int  # the step whose weights the model now holds
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)
    initial: dict[str, float] = field(default_factory=dict)


class TrainingStopped(EmbtuneError):
    """Training had to stop (e.g. a non-finite loss); the message says where the last good checkpoint is."""


def _optimizer(model: torch.nn.Module, extra: list[torch.nn.Parameter], config: TrainConfig,
               extra_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """AdamW; the objective's own new parameters (heads, decoders) may learn ``extra_lr_scale`` times faster."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(param)
    extra_lr = config.learning_rate * extra_lr_scale
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": [p for p in extra if p.ndim < 2], "weight_decay": 0.0, "lr": extra_lr},
        {"params": [p for p in extra if p.ndim >= 2], "weight_decay": config.weight_decay, "lr": extra_lr},
    ]
    groups = [g for g in groups if g["params"]]
    try:  # the fused kernel (one launch for all tensors) is markedly faster on CPU too
        return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=config.learning_rate)


def _schedule(optimizer: torch.optim.Optimizer, total: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = int(total * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _autocast(device: str, mode: str):
    if device.startswith("cuda") and mode != "off":
        dtype = torch.bfloat16 if (mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported())) else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype == torch.float16
    if device == "cpu" and mode == "bf16":  # asked for: pays where the CPU has bf16 units (nn.device.cpu_has_bf16)
        return torch.autocast("cpu", dtype=torch.bfloat16), False
    return torch.autocast("cpu", enabled=False), False


def evaluate_model(model, eval_set: EvalSet) -> dict[str, float]:
    """The monitored metrics of ``model`` on ``eval_set``."""
    vectors = encode_frozen(model, eval_set.texts)
    views = (vectors, encode_frozen(model, eval_set.view_texts)) if eval_set.view_texts else None
    pairs = None
    if eval_set.sts is not None:
        first, second, scores = eval_set.sts
        pairs = (encode_frozen(model, first), encode_frozen(model, second), scores)
    return training_metrics(vectors, k=eval_set.k, labels=eval_set.labels, views=views, pairs=pairs)


def _improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if METRIC_INFO[metric].higher_is_better else value < best


def train(
    model,
    objective,
    items: list,
    config: TrainConfig,
    *,
    checkpoint_dir: Path,
    eval_set: EvalSet | None = None,
    resume: bool = False,
    on_step: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` (a SentenceTransformer) with ``objective`` on ``items``; checkpoints go to ``checkpoint_dir``.

    ``on_step(step, total, loss)`` is called after every optimizer step (for progress bars). On return the model holds
    the kept weights: the best evaluation's when ``early_stopping_metric`` is set, the last healthy ones after a
    collapse, else the final ones.

    >>> result = train(model, AugmentObjective(), texts, TrainConfig(max_steps=100), checkpoint_dir=Path("out/ckpt"))
    """
    _check_run(items, config, eval_set)
    device = str(next(model.parameters()).device)
    total = config.total_steps(len(items))
    eval_every = config.eval_every or max(1, total // 10)
    checkpoint_every = config.checkpoint_every or eval_every
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    objective.setup(model, items)
    objective.to(device)
    optimizer = _optimizer(model, objective.extra_parameters(model), config, getattr(objective, "head_lr_scale", 1.0))
    scheduler = _schedule(optimizer, total, config.warmup_ratio)
    autocast, use_scaler = _autocast(device, config.mixed_precision)
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    grouped = objective.length_grouping if config.length_grouped is None else bool(config.length_grouped)
    state = TrainState(config={**asdict(config), "length_grouped": grouped})
    initial: dict[str, float] = {}
    if resume:
        folder = latest_checkpoint(checkpoint_dir)
        if folder is None:
            raise EmbtuneError(f"--resume: no checkpoint in {checkpoint_dir}; start without --resume")
        state = load_checkpoint(folder, model=model, objective=objective, optimizer=optimizer)
        scheduler.load_state_dict(state.scheduler)
        rng.bit_generator.state = state.numpy_rng
        initial = state.history[0]["metrics"] if state.history else {}
        grouped = bool(state.config.get("length_grouped", False))  # the order the run started with (none before)
        log.info("resuming from %s (step %d of %d)", folder.name, state.step, total)
    elif eval_set is not None:
        initial = evaluate_model(model, eval_set)
        state.history.append({"step": 0, "metrics": initial})

    def checkpoint() -> None:
        state.numpy_rng = rng.bit_generator.state
        state.scheduler = scheduler.state_dict()
        if distributed.is_main():  # every process holds the same state; one writes it
            save_checkpoint(checkpoint_dir, model=model, objective_state=objective.extra_state(model),
                            optimizer=optimizer, state=state, keep=config.keep_checkpoints)
        distributed.barrier()

    if not resume:
        checkpoint()  # step 0: there is always a healthy state to go back to
    started = time.perf_counter() - state.seconds
    stopped = "finished"
    model.train()
    objective.train()
    n = len(items)
    runs = objective.label_runs(items)  # label-aware batches replace length grouping where the loss asks for them
    lengths = item_lengths(model, items) if grouped and runs is None else None
    order_epoch, order = -1, None
    micro = 0
    optimizer.zero_grad(set_to_none=True)
    while state.step < total and stopped == "finished":
        if state.position >= n:
            state.epoch, state.position = state.epoch + 1, 0
        if order_epoch != state.epoch:  # each epoch's order follows from (seed, epoch), so a resume finds it again
            order_epoch, order = state.epoch, epoch_order(n, config.batch_size, config.seed, state.epoch, lengths, runs)
        if micro % config.grad_accum == 0:
            objective.refresh(model, items, state.step)
        chunk = [items[i] for i in order[state.position : state.position + config.batch_size]]
        state.position += config.batch_size
        batch = objective.batch(chunk, rng)
        with autocast:
            loss = objective(model, batch)
        if not torch.isfinite(loss):
            _stop_on_non_finite(loss, state.step + 1, config, checkpoint_dir)
        scaled = loss / config.grad_accum
        (scaler.scale(scaled) if scaler else scaled).backward()
        micro += 1
        if micro % config.grad_accum:
            continue

        _optimizer_step(optimizer, scheduler, scaler, config.max_grad_norm)
        state.step += 1
        state.losses.append([state.step, round(float(loss.detach()), 6)])
        state.seconds = time.perf_counter() - started
        if on_step is not None and distributed.is_main():
            on_step(state.step, total, float(loss.detach()))

        new_best = False
        if eval_set is not None and (state.step % eval_every == 0 or state.step == total):
            stopped = _after_eval(model, eval_set, config, state, initial)
            if stopped == "collapse":
                break  # the collapsed weights are never checkpointed
            new_best = state.best_step == state.step
        over_time = distributed.agree(config.max_minutes is not None and state.seconds > config.max_minutes * 60)
        if over_time and stopped == "finished":
            stopped = "time budget"
        if state.step % checkpoint_every == 0 or state.step == total or new_best or stopped != "finished":
            checkpoint()

    kept = _keep_weights(model, objective, checkpoint_dir, state, config, stopped)
    model.eval()
    return TrainResult(steps=state.step, stopped=stopped, kept_step=kept, seconds=state.seconds,
                       history=state.history, losses=state.losses, initial=initial)


def _check_run(items: list, config: TrainConfig, eval_set: EvalSet | None) -> None:
    if not items:
        raise EmbtuneError("nothing to train on: the training set is empty")
    if config.early_stopping_metric and config.early_stopping_metric not in METRIC_INFO:
        raise EmbtuneError(f"--early-stopping {config.early_stopping_metric!r}: use one of {', '.join(METRIC_INFO)}")
    if config.early_stopping_metric and eval_set is None:
        raise EmbtuneError("early stopping needs a held-out evaluation set")


def _stop_on_non_finite(loss: torch.Tensor, step: int, config: TrainConfig, checkpoint_dir: Path) -> None:
    last = latest_checkpoint(checkpoint_dir)
    where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
    raise TrainingStopped(f"the loss became {loss.item()} at step {step}; {where}. Lower --lr (now "
                          f"{config.learning_rate:g}) or check the data")


def _optimizer_step(optimizer, scheduler, scaler, max_grad_norm: float) -> None:
    """Average the gradients across processes, unscale, clip, step the optimizer and the schedule, clear."""
    parameters = [p for g in optimizer.param_groups for p in g["params"]]
    distributed.average_gradients(parameters)
    if scaler:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _keep_weights(model, objective, checkpoint_dir: Path, state: TrainState, config: TrainConfig, stopped: str) -> int:
    """Load the weights the run keeps (the last healthy ones after a collapse, the best evaluation's with early
    stopping, else the current ones); returns their step."""
    if stopped == "collapse":
        return _restore_healthy(model, objective, checkpoint_dir, state)
    if config.early_stopping_metric and state.best_step is not None and state.best_step != state.step:
        folder = checkpoint_for_step(checkpoint_dir, state.best_step)
        if folder is not None:
            load_weights(folder, model, objective)
            return state.best_step
    return state.step


def _after_eval(model, eval_set: EvalSet, config: TrainConfig, state: TrainState, initial: dict) -> str:
    """Evaluate, record, and decide whether to go on: returns "finished" (go on), "collapse" or "early stopping"."""
    metrics = evaluate_model(model, eval_set)
    state.history.append({"step": state.step, "metrics": metrics})
    log.info("step %d: %s", state.step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    start_spread = 1 - initial.get("mean_cosine", 0.0)
    spread_floor = config.collapse_ratio * start_spread
    rank_floor = config.collapse_ratio * initial.get("effective_rank", 0.0)
    if config.collapse_ratio and (1 - metrics["mean_cosine"] < spread_floor or metrics["effective_rank"] < rank_floor):
        log.warning(
            "step %d: the embedding space is collapsing (mean pairwise cosine %.3f vs %.3f at the start, effective "
            "rank %.1f vs %.1f); stopping and keeping the last healthy weights",
            state.step, metrics["mean_cosine"], initial.get("mean_cosine", float("nan")), metrics["effective_rank"],
            initial.get("effective_rank", float("nan")),
        )
        state.history[-1]["collapsed"] = True
        return "collapse"
    metric = config.early_stopping_metric
    if metric:
        if metric not in metrics:
            raise EmbtuneError(f"--early-stopping {metric}: not measured on the held-out slice (needs labels or --sts?)")
        if _improved(metric, metrics[metric], state.best_value):
            state.best_value, state.best_step, state.bad_evals = metrics[metric], state.step, 0
        else:
            state.bad_evals += 1
            if state.bad_evals >= config.patience:
                log.info("early stopping: %s has not improved for %d evaluations (best %.4f at step %d)",
                         metric, state.bad_evals, state.best_value, state.best_step)
                return "early stopping"
    return "finished"


def _restore_healthy(model, objective, checkpoint_dir: Path, state: TrainState) -> int:
    """After a collapse, go back to the newest checkpoint saved before it (checkpoints are written after evals)."""
    folder = latest_checkpoint(checkpoint_dir)  # there is always one: step 0 is saved before training starts
    load_weights(folder, model, objective)
    return int(folder.name.split("-")[1])
