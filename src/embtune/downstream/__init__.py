"""Classifiers built on pretrained embeddings: TextCNN over token embeddings, few-shot (SetFit-style) on sentence
vectors. Loaded lazily (torch and transformers are imported only when a class is used)."""

from __future__ import annotations

import importlib

_LAZY = {
    "TextCNNClassifier": "embtune.downstream.textcnn",
    "FewShotClassifier": "embtune.downstream.fewshot",
    "load_classifier": "embtune.downstream.base",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embtune.downstream' has no attribute {name!r}")
