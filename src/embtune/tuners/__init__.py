"""Tuners: scikit-learn estimators that reshape frozen vectors (fit / partial_fit / transform / predict).

Names load lazily so that importing embtune stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FeedForwardTuner": "feedforward",
    "ContrastiveLearner": "contrastive",
    "ContrastiveTuner": "contrastive",
    "AutoencoderTuner": "autoencoder",
    "InfoNCETuner": "infonce",
    "NeighborhoodTuner": "neighborhood",
    "SpectralTuner": "spectral",
    "TunerBase": "base",
    "load_tuner": "base",
    "METHODS": "methods",
    "make_tuner": "methods",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
