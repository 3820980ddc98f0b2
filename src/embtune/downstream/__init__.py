"""Classifiers built on pretrained embeddings: TextCNN over token embeddings, few-shot (SetFit-style) on sentence
vectors. Loaded lazily (torch and transformers are imported only when a class is used)."""

from __future__ import annotations

from embtune.lazy import lazy_exports

_LAZY = {
    "TextCNNClassifier": "embtune.downstream.textcnn",
    "FewShotClassifier": "embtune.downstream.fewshot",
    "load_classifier": "embtune.downstream.base",
}

__getattr__, __all__ = lazy_exports(__name__, _LAZY)
