"""The one interface every embedding backend implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Turns items (texts, or image paths for image backbones) into float32 vectors of width ``dim``.

    ``fingerprint`` identifies the exact weights and settings: the vector cache keys on it, so two encoders with the
    same fingerprint must give the same vectors.
    """

    name: str
    modality: str  # "text" | "image"

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    def encode(
        self,
        items: Sequence,
        *,
        batch_size: int = 64,
        normalize: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(len(items), dim) float32; ``on_batch(n)`` is called after each batch of ``n`` items (for progress)."""
        ...

    def module(self):
        """The trainable torch.nn.Module, for training/. Frozen-only backends raise."""
        ...

    def save(self, path: str | Path) -> None: ...
