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


class ModelEncoder:
    """Base of the model-backed encoders (sentence-transformers, image backbones, the USE port, TF SavedModels).

    The model loads on first use (subclasses implement ``_load_model``), the fingerprint is computed once (they
    implement ``_compute_fingerprint``), and ``encode`` / ``dim`` / ``module`` / ``save`` go to the model's own
    ``encode(items, batch_size=, on_batch=)``, ``dim`` and ``save(path)`` unless a subclass knows better.
    """

    modality = "text"

    def __init__(self, *, name: str, device: str = "auto", cache=None):
        self.name = name
        self.device_spec = device
        self._cache_for_digests = cache  # the vector cache also remembers folder digests
        self._model = None
        self._fingerprint: str | None = None

    def _load_model(self):
        raise NotImplementedError

    def _compute_fingerprint(self) -> str:
        raise NotImplementedError

    @property
    def model(self):
        """The loaded model (loaded on first access)."""
        if self._model is None:
            self._model = self._load_model()
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def encode(self, items: Sequence, *, batch_size: int = 64, normalize: bool = True,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        from embtune.data.vectors import l2_normalize

        vectors = self.model.encode(list(items), batch_size=batch_size, on_batch=on_batch)
        return l2_normalize(vectors) if normalize else vectors

    def module(self):
        return self.model

    def save(self, path: str | Path) -> None:
        self.model.save(path)


def package_fingerprint(name: str, package: str) -> str:
    """``name-VERSION`` of weights that ship in a pip package (the version changes when the weights may)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name}-{version(package)}"
    except PackageNotFoundError:
        return name


def read_model_config(folder: str | Path, key: str, what: str) -> dict:
    """The config.json of a model folder embtune saved (``key`` names its kind, ``what`` says it in errors)."""
    import json

    from embtune.errors import ModelNotFoundError

    config_path = Path(folder) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelNotFoundError(f"{config_path}: not a readable {what} config ({e})") from None
    if not isinstance(config, dict) or key not in config:
        raise ModelNotFoundError(f"{folder}: not an embtune {what} folder (config.json has no {key!r})")
    return config
