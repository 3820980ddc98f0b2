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
    "neighbors": ("neighbors", "NeighborsObjective"),
    "pseudo": ("pseudo", "PseudoLabelObjective"),
    "sccl": ("sccl", "SCCLObjective"),
    "supcon": ("supcon", "SupervisedContrastiveObjective"),
    "distill": ("distill", "DistillObjective"),
    # images
    "simclr": ("simclr", "SimCLRObjective"),
    "moco": ("moco", "MoCoObjective"),
    "byol": ("byol", "BYOLObjective"),
    "autoencoder": ("image_autoencoder", "ImageAutoencoderObjective"),
    "inpaint": ("inpaint", "InpaintObjective"),
}
OBJECTIVE_NAMES = tuple(_OBJECTIVES)
IMAGE_OBJECTIVES = ("simclr", "moco", "byol", "autoencoder", "inpaint")
TEXT_OBJECTIVES = tuple(n for n in OBJECTIVE_NAMES if n not in IMAGE_OBJECTIVES)
NEEDS_MODEL = {"tsdae", "ct", "mlm", *IMAGE_OBJECTIVES}  # built around the model they train


def objective_class(name: str):
    if name not in _OBJECTIVES:
        raise EmbtuneError(f"--objective {name!r}: use one of {', '.join(_OBJECTIVES)}")
    module, cls = _OBJECTIVES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def anchor_weight(name: str, anchor: float | None = None) -> float:
    """The pull towards the base model objective ``name`` trains with: ``anchor`` if given, else its default."""
    return objective_class(name).default_anchor if anchor is None else anchor


def make_objective(name: str, model, *, anchor: float | None = None, anchor_kind: str = "cosine", **params):
    """Build objective ``name`` for ``model`` (``params`` are the objective's own, e.g. temperature).

    ``anchor`` > 0 adds a distillation term towards the base model's embeddings with that weight; None takes the
    objective's ``default_anchor`` (1 for simcse, augment, ct and sccl, 0 for the others); 0 turns it off.
    """
    import inspect

    cls = objective_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    unknown = [k for k in params if k not in accepted]
    if unknown:
        options = ", ".join(p for p in accepted if p not in ("self", "model")) or "none"
        raise EmbtuneError(f"--objective {name} does not take {', '.join(unknown)} (its options: {options})")
    objective = cls(model, **params) if name in NEEDS_MODEL else cls(**params)
    anchor = anchor_weight(name, anchor)
    if anchor:
        from embtune.training.objectives.anchor import AnchoredObjective

        objective = AnchoredObjective(objective, weight=anchor, kind=anchor_kind)
    return objective


def objective_params(objective: str, *, temperature: float | None = None, neighbors: int | None = None,
                     clusters: int | None = None, refresh_every: int | None = None, denoise: bool = False,
                     reconstruct: str | None = None, anchor: float | None = None, teacher: str | None = None) -> dict:
    """The ``objective_params`` the finetune options mean for ``objective`` (only those given): ``neighbors`` is the
    k of neighbors / distill, ``clusters`` the k of pseudo / sccl; ``reconstruct`` the image autoencoder's target;
    ``teacher`` the tuner distill learns from (a tuner folder or a method name)."""
    params = {"temperature": temperature, "k": neighbors if objective in ("neighbors", "distill") else clusters,
              "refresh_every": refresh_every, "denoise": True if denoise else None, "target": reconstruct,
              "anchor": anchor, "teacher": teacher}
    return {k: v for k, v in params.items() if v is not None}
