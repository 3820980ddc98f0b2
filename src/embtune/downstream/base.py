"""What the downstream classifiers share: label encoding, input checks, and a folder format (config.json +
safetensors + the model's own tokenizer) that loads without unpickling or running code from the file."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from embtune.atomic import atomic_write_text
from embtune.errors import EmbtuneError
from embtune.saved_config import FORMAT_VERSION, jsonable, read_saved_config, rebuilding

CONFIG = "config.json"
CLASSIFIERS = {"TextCNNClassifier": "embtune.downstream.textcnn", "FewShotClassifier": "embtune.downstream.fewshot"}


def check_texts(texts, name: str = "texts") -> list[str]:
    """A list of non-empty strings, or a clear error naming the first bad row."""
    if isinstance(texts, (str, bytes)):
        raise EmbtuneError(f"{name} must be a list of texts, not one string")
    texts = list(texts)
    if not texts:
        raise EmbtuneError(f"{name} is empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise EmbtuneError(f"{name}[{i}] is a {type(t).__name__}, not a string")
        if not t.strip():
            raise EmbtuneError(f"{name}[{i}] is empty; drop empty rows before training or predicting")
    return texts


def encode_labels(texts: list[str], y, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """(classes, targets): class codes (n,) for single-label, a 0/1 matrix (n, classes) for multi-label."""
    if y is None:
        raise EmbtuneError("fit needs labels y (one per text)")
    y = list(y)
    if len(y) != len(texts):
        raise EmbtuneError(f"{len(texts)} texts but {len(y)} labels; give exactly one label per text")
    if multi_label:
        from sklearn.preprocessing import MultiLabelBinarizer

        if any(isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") for v in y):
            raise EmbtuneError("multi_label=True needs a list of labels per text (e.g. [['billing', 'refund'], ...])")
        binarizer = MultiLabelBinarizer()
        targets = binarizer.fit_transform(y).astype(np.float32)
        classes = binarizer.classes_
    else:
        classes, targets = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise EmbtuneError(f"only one class ({classes[0]!r}) in the labels; a classifier needs at least two")
    return classes, targets


class ClassifierBase(ClassifierMixin, BaseEstimator):
    """scikit-learn classifier with embtune's folder format; subclasses write their weights in ``_save_weights``."""

    def _fitted_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _save_weights(self, path: Path) -> None:
        raise NotImplementedError

    def _load_weights(self, path: Path, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the classifier to the folder ``path`` (weights, config.json, tokenizer); reload with :func:`load_classifier`."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_weights(path)
        config = {"embtune_classifier": type(self).__name__, "format": FORMAT_VERSION,
                  "params": jsonable(self.get_params(deep=False)), "classes": jsonable(self.classes_),
                  "fitted": jsonable(self._fitted_state())}
        atomic_write_text(path / CONFIG, json.dumps(config, indent=2) + "\n")  # last: a folder without it is incomplete
        return path


def load_classifier(path: str | Path) -> ClassifierBase:
    """Any classifier saved with ``save`` (TextCNNClassifier, FewShotClassifier).

    A folder whose files were cut short or edited fails with one :class:`EmbtuneError` naming it (the CLI's exit 1).
    """
    path = Path(path)
    config = read_saved_config(path, key="embtune_classifier", known=CLASSIFIERS, what="classifier",
                               how=f"`embtune classify ... -o {path}`")
    name = config["embtune_classifier"]
    cls = getattr(importlib.import_module(CLASSIFIERS[name]), name)
    with rebuilding(path, what="classifier", how="train it again with `embtune classify -o`"):
        clf = cls(**config["params"])
        clf.classes_ = np.asarray(config["classes"])
        clf._load_weights(path, config["fitted"])
    return clf
