"""The one small loop the tuners and the TextCNN classifier share: mini-batches over in-memory tensors, early stopping, keep-best.

Tuners train on arrays that fit in memory, so this is not training/trainer.py (which streams a corpus through a
transformer, checkpoints and resumes); it is the inner loop of a scikit-learn estimator, kept in one place.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)


@dataclass
class TrainLog:
    """Loss per epoch, the epoch whose weights were kept, and whether training stopped before ``n_epochs``."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def run_epochs(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    data: Sequence[torch.Tensor],
    *,
    n_epochs: int,
    batch_size: int,
    generator: torch.Generator,
    validation: Sequence[torch.Tensor] | None = None,
    n_iter_no_change: int | None = 10,
    tol: float = 1e-4,
    name: str = "tuner",
) -> TrainLog:
    """Train ``module`` for up to ``n_epochs`` passes over ``data`` (tensors sharing their first dimension).

    ``loss_fn(*batch)`` returns the mean loss of a batch. Stopping follows scikit-learn's MLP: with ``validation``, stop
    when the validation loss has not improved by ``tol`` for ``n_iter_no_change`` epochs and restore the best weights;
    without it, stop when the training loss has not improved by ``tol`` for ``n_iter_no_change`` epochs.
    ``n_iter_no_change=None`` always runs every epoch. A non-finite loss stops with an error naming the epoch.
    """
    n = len(data[0])
    log_ = TrainLog()
    best = math.inf
    best_state = None
    stale = 0
    for epoch in range(n_epochs):
        module.train()
        order = torch.randperm(n, generator=generator).to(data[0].device)
        total = torch.zeros((), device=data[0].device)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            loss = loss_fn(*(t[index] for t in data))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(index)
        train_loss = float(total) / n
        if not math.isfinite(train_loss):
            raise EmbtuneError(
                f"{name}: the training loss became {train_loss} in epoch {epoch + 1}; lower learning_rate or check the "
                "input vectors for extreme values"
            )
        log_.train_loss.append(train_loss)
        monitored = train_loss
        if validation is not None:
            module.eval()
            with torch.no_grad():
                monitored = float(loss_fn(*validation))
            log_.val_loss.append(monitored)
        if monitored < best - tol:
            best, stale, log_.best_epoch = monitored, 0, epoch + 1
            if validation is not None:
                best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
        if n_iter_no_change is not None and stale >= n_iter_no_change:
            log_.stopped_early = epoch + 1 < n_epochs
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    log.debug("%s: %d epochs, best %d, loss %.4g", name, log_.epochs, log_.best_epoch, best)
    return log_
