"""Data-parallel training across processes and machines with torch.distributed, launched by ``torchrun``.

How the one trainer uses it (no code change for the user, ``embtune finetune ... --nproc N`` or ``torchrun ...``):

- Every process builds the same global batch (same seed, same data order, same augmentations), so what the run does is
  what one process with the same global batch would do.
- :func:`shard_and_gather` is where the work is split: each process embeds only its share of a batch's texts and the
  shares are gathered *with gradients* (``torch.distributed.nn.all_gather``, whose backward sums each share's gradient
  over the processes), so every process sees the whole batch's embeddings and in-batch negatives span the global batch.
  Every process then computes the same loss.
- :func:`average_gradients` all-reduces the gradients after backward (what DDP's reducer does, without wrapping the
  model: the objectives call the sentence-transformers model's own methods, which a DDP wrapper would hide).
- Only rank 0 writes checkpoints, logs progress and exports; every rank can resume from the shared checkpoint folder.

gloo on CPU, NCCL on GPU (each process on ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def launched() -> bool:
    """True in a process started by torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init_if_launched(device: str = "auto") -> str:
    """Join the process group when launched by torchrun; returns the device this process should train on."""
    if not launched() or active():
        return device
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
    if dist.get_rank() != 0:
        logging.getLogger("embtune").setLevel(logging.WARNING)  # one voice: rank 0 logs and shows progress
    log.info("distributed training: %d processes (%s)", dist.get_world_size(), dist.get_backend())
    return "cpu" if device == "auto" else device


def shutdown() -> None:
    """Leave the process group this process joined (the CLI calls it when a torchrun-launched command ends)."""
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def shard_and_gather(items: list, compute: Callable[[list], torch.Tensor]) -> torch.Tensor:
    """``compute(items)`` for the whole batch, with each process computing only its share (rows in order).

    Shares differ by at most one item; they are padded to one size for the gather and the padding is dropped. A batch
    smaller than the number of processes is computed whole on every process.
    """
    world = world_size()
    if world == 1 or len(items) < world:
        return compute(items)
    bounds = [len(items) * r // world for r in range(world + 1)]
    mine = compute(items[bounds[rank()] : bounds[rank() + 1]])
    size = max(bounds[r + 1] - bounds[r] for r in range(world))
    if len(mine) < size:
        mine = torch.cat([mine, mine.new_zeros((size - len(mine), *mine.shape[1:]))])
    from torch.distributed.nn.functional import all_gather

    shares = all_gather(mine.contiguous())
    return torch.cat([share[: bounds[r + 1] - bounds[r]] for r, share in enumerate(shares)])


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Mean of every gradient over the processes (one flat all-reduce)."""
    if not active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def agree(flag: bool) -> bool:
    """True on every process when it is True on rank 0 (decisions taken from a clock must not split the processes)."""
    if not active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(value, src=0)
    return bool(value.item())
