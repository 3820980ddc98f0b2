"""Objectives by name: one small module each, a batch of raw items in, a loss out."""

from __future__ import annotations

import importlib

from embtune.errors import EmbtuneError

# name -> (module, class); modules import lazily so the CLI stays fast
_OBJECTIVES = {
    "augment": ("augment", "AugmentObjective"),
    "simcse": ("simcse", "SimCSEObjective"),
    "tsdae": ("tsdae", "TSDAEObjective"),
    "ct": ("ct", "ContrastiveTensionObjective"),
    "mlm": ("mlm", "MaskedLMObjective"),
    "mnrl": ("mnrl", "MultipleNegativesRankingObjective"),
    "cosine": ("cosine", "CosineObjective"),
    "cosent": ("cosent", "CoSENTObjective"),
}
OBJECTIVE_NAMES = tuple(_OBJECTIVES)
NEEDS_MODEL = {"tsdae", "ct", "mlm"}  # built around the model they train


def objective_class(name: str):
    if name not in _OBJECTIVES:
        raise EmbtuneError(f"--objective {name!r}: use one of {', '.join(_OBJECTIVES)}")
    module, cls = _OBJECTIVES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def make_objective(name: str, model, **params):
    """Build objective ``name`` for ``model`` (``params`` are the objective's own, e.g. temperature)."""
    cls = objective_class(name)
    return cls(model, **params) if name in NEEDS_MODEL else cls(**params)
