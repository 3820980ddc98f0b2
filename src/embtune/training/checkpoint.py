"""Training checkpoints: everything needed to continue a run exactly, written so a kill never leaves a torn one.

A checkpoint is a folder ``checkpoints/step-00000120/`` holding
- ``model.safetensors``: the model's weights and the objective's own tensors (prefixed ``objective.``),
- ``optimizer.pt``: the optimizer state (plain tensors and numbers; loaded with ``weights_only=True``),
- ``rng.safetensors``: torch's CPU (and CUDA) random states,
- ``state.json``: step, epoch, position in the epoch, scheduler, numpy random state, metrics history, best so far.
It is written under a temporary name and renamed into place; ``checkpoints/latest`` then names it. Older checkpoints
are removed except the newest ``keep`` and the best one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from embtune.atomic import atomic_write_text
from embtune.errors import EmbtuneError

LATEST = "latest"


@dataclass
class TrainState:
    """Where a run is: the next optimizer step, the epoch and the position in its shuffled order, and its history."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    seconds: float = 0.0
    best_value: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)  # [step, loss] pairs
    numpy_rng: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def _folder_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(
    directory: Path,
    *,
    model: torch.nn.Module,
    objective_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    keep: int = 2,
) -> Path:
    """Write a checkpoint for ``state.step`` atomically and point ``latest`` at it."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / _folder_name(state.step)
    tmp = directory / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"objective.{k}": v.detach().cpu().clone().contiguous() for k, v in objective_state.items()})
    save_file(tensors, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"torch_cuda_{i}"] = s
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps(asdict(state), indent=1))
    for f in tmp.iterdir():  # make the files durable before the folder appears under its final name
        with open(f, "rb") as handle:
            import os

            os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_text(directory / LATEST, final.name + "\n")
    _prune(directory, keep=keep, protect={final.name, _folder_name(state.best_step) if state.best_step else ""})
    return final


def _prune(directory: Path, *, keep: int, protect: set[str]) -> None:
    folders = sorted(p for p in directory.glob("step-*") if p.is_dir())
    for old in folders[:-keep] if keep else folders:
        if old.name not in protect:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    folder = directory / pointer.read_text().strip()
    return folder if (folder / "state.json").is_file() else None


def checkpoint_for_step(directory: Path, step: int) -> Path | None:
    folder = directory / _folder_name(step)
    return folder if (folder / "model.safetensors").is_file() else None


def load_weights(folder: Path, model: torch.nn.Module, objective: torch.nn.Module | None = None) -> None:
    """Load a checkpoint's model (and objective) tensors into existing modules."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"), device="cpu")
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state)
    if objective is not None:
        objective_state = {k[len("objective.") :]: v for k, v in tensors.items() if k.startswith("objective.")}
        if objective_state:
            objective.load_state_dict(objective_state, strict=False)


def load_checkpoint(
    folder: Path, *, model: torch.nn.Module, objective: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> TrainState:
    """Restore weights, optimizer and random states from ``folder``; returns the saved :class:`TrainState`."""
    from safetensors.torch import load_file

    try:
        state = TrainState(**json.loads((folder / "state.json").read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise EmbtuneError(f"checkpoint {folder} is unreadable ({e}); delete it to start over") from None
    load_weights(folder, model, objective)
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    cuda_states = [rng[k] for k in sorted(rng) if k.startswith("torch_cuda_")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return state
