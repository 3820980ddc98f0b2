"""Tuners: scikit-learn estimators that reshape frozen vectors (fit / partial_fit / transform / predict).

Names load lazily so that importing embtune stays fast.
"""

from __future__ import annotations

from embtune.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
