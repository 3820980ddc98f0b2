"""A tuner folder as `embtune tune -o` and `embtune auto` write it: the tuner (config.json + model.safetensors) and
``tuning.json``, which names the base model whose vectors it expects.

Everything that recognises a tuner folder, loads it with its base model, or turns it into "texts -> tuned vectors"
lives here, so the entry points and the report do not each guess.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from embtune.atomic import atomic_write_text
from embtune.encoders import DEFAULT_MODEL, encoder_for, load_encoder, resolve_model
from embtune.encoders.cache import directory_fingerprint
from embtune.encoders.encode import encode_items
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

TUNING_FILE = "tuning.json"  # written next to a saved tuner: base model, method, data, before/after metrics
AUTO_FILE = "auto.json"  # what `embtune auto` tried and chose; its choice (a tuner or a model folder) is in model/


def is_tuner_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a saved tuner (its config.json names an ``embtune_tuner`` class)."""
    config = Path(str(path)) / "config.json"
    return config.is_file() and '"embtune_tuner"' in config.read_text(errors="replace")


def base_model_meta(encoder) -> dict[str, str]:
    """What tuning.json records of the base model, so a tuner can later find (and check) its input vectors."""
    return {"base_model": encoder.name, "base_model_fingerprint": encoder.fingerprint,
            "base_model_path": str(getattr(encoder, "path", ""))}


def save_tuner_folder(tuner, output: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``tuner`` and its ``tuning.json`` (``meta``: at least :func:`base_model_meta`) into ``output``."""
    output = Path(output)
    tuner.save(output)
    atomic_write_text(output / TUNING_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    return output


def load_tuner_with_base(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """A saved tuner and its ``tuning.json`` (which names the base model it expects vectors from; {} if absent)."""
    from embtune.tuners.base import load_tuner

    tuner = load_tuner(path)
    meta_path = Path(path) / TUNING_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return tuner, meta


def tuner_and_base_model(tuner, model, cache=None, device: str = "auto"):
    """(fitted tuner, model to encode with): load a tuner from its folder if needed and pick the model whose vectors
    it expects (``model`` when given, with a warning if it is not the one the tuner was fitted on)."""
    if not isinstance(tuner, (str, Path)):
        return tuner, model
    fitted, meta = load_tuner_with_base(tuner)
    if model is None:
        model = meta.get("base_model") or DEFAULT_MODEL
        try:
            resolve_model(model)
        except EmbtuneError:  # a local folder named relative to where the tuner was made: use its absolute path
            model = meta.get("base_model_path") or model
    elif meta.get("base_model_fingerprint"):
        chosen = load_encoder(model, device=device, cache=cache)
        if chosen.fingerprint != meta["base_model_fingerprint"]:
            log.warning("the tuner in %s was fitted on vectors from %s, not %s; its output may be meaningless",
                        tuner, meta.get("base_model"), chosen.name)
    return fitted, model


def teacher_tuner(teacher, model, device: str = "auto"):
    """The tuner `finetune --objective distill` learns from: a tuner object as given; a tuner folder from `embtune tune
    -o` (fitted on ``model``'s vectors: checked); or a label-free method's name (``None``: spectral), which the run
    fits on its training texts."""
    from embtune.tuners.methods import METHODS, make_tuner

    teacher = "spectral" if teacher is None else teacher
    if not isinstance(teacher, (str, Path)):
        return teacher
    if is_tuner_folder(teacher):
        tuner, meta = load_tuner_with_base(teacher)
        expected = meta.get("base_model_fingerprint")
        if expected and load_encoder(model or DEFAULT_MODEL, device=device).fingerprint != expected:
            raise EmbtuneError(f"--teacher {teacher}: that tuner was fitted on vectors from {meta.get('base_model')}, "
                               f"not {model or DEFAULT_MODEL}; fine-tune that model, or fit a tuner on this one")
        return tuner
    label_free = [name for name, spec in METHODS.items() if not spec.needs_labels]
    if str(teacher) not in label_free:
        raise EmbtuneError(f"--teacher {teacher}: not a tuner folder (no config.json from `embtune tune -o` there) nor "
                           f"one of the label-free methods {', '.join(label_free)}")
    return make_tuner(str(teacher), device=device)  # the device applies to the methods that train


def space_after(after, before_model, cache=None, device: str = "auto"):
    """(name, function texts -> vectors, training record or None) for what a report's ``after`` names: a tuner folder
    (its base model's vectors passed through it, its epochs as the training record) or a model; an `embtune auto`
    folder stands for what it chose."""
    after, folder = model_or_tuner(after)
    if folder is not None:
        tuner, meta = load_tuner_with_base(folder)
        base = load_encoder(before_model or meta.get("base_model") or DEFAULT_MODEL, device=device, cache=cache)
        encoder = TunedEncoder(base, tuner, folder, cache)
        name = f"{type(tuner).__name__} ({folder.name})"
        record = {"losses": [[i + 1, v] for i, v in enumerate(getattr(tuner, "history_", []))], "history": [],
                  "loss_unit": "epoch", "method": meta.get("method"), "n_fit": meta.get("n_fit")}
    else:
        encoder = load_encoder(str(after), device=device, cache=cache)
        summary = Path(str(after)) / "embtune.json"
        name, record = encoder.name, json.loads(summary.read_text()) if summary.is_file() else None

    def encoded(texts):  # a tuner's output as it gives it (not rescaled); a model's vectors unit length
        vectors, _ = encode_items(encoder, texts, cache=cache, normalize=folder is None)
        return vectors

    return name, encoded, record


class TunedEncoder:
    """An :class:`~embtune.encoders.Encoder` for a tuner folder: the base model's vectors (through the vector cache)
    passed through the tuner. Its fingerprint covers the base model and the tuner's files, so tuned vectors cache too."""

    def __init__(self, base, tuner, folder: Path, cache=None):
        self.base, self.tuner, self.folder, self.cache = base, tuner, Path(folder), cache
        self.name = f"{base.name} + {type(tuner).__name__} ({self.folder.name})"
        self.modality = getattr(base, "modality", "text")
        self._fingerprint = None
        if hasattr(base, "item_key"):  # images key on path + size + mtime, as the base model's cache does
            self.item_key = base.item_key

    @property
    def dim(self) -> int:
        return int(self.tuner.transform(np.zeros((1, self.base.dim), dtype=np.float32)).shape[1])

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = f"tuned:{self.base.fingerprint}:{directory_fingerprint(self.folder, self.cache)}"
        return self._fingerprint

    def encode(self, items, *, batch_size: int = 64, normalize: bool = True, on_batch=None):
        # The tuner gets unit base vectors, as it was fitted on; ``normalize`` is for its output (encode_items asks
        # for raw rows and normalises them itself).
        vectors, _ = encode_items(self.base, items, cache=self.cache, batch_size=batch_size)
        if on_batch is not None:
            on_batch(len(vectors))
        return self.tuner.transform(vectors)

    def module(self):
        raise EmbtuneError(f"{self.folder} is a tuner over frozen vectors, not a model to train; fine-tune its base "
                           f"model ({self.base.name}) instead, or fit a new tuner with `embtune tune`")

    def save(self, path) -> None:
        raise EmbtuneError(f"{self.folder} is a tuner folder; copy the folder itself to keep it")


def auto_choice(folder: Path) -> str:
    """What an `embtune auto` folder chose, as something ``--model`` takes: its model/ folder (a tuner or a
    fine-tuned model), or the base model's name when auto kept the base."""
    try:
        summary = json.loads((folder / AUTO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EmbtuneError(f"{folder / AUTO_FILE}: cannot read it ({e}); run `embtune auto` again") from None
    if summary.get("chosen") in (None, "base"):
        if summary.get("reason") == "running":
            raise EmbtuneError(f"{folder}: `embtune auto` has not finished there (auto.json says running); wait for it "
                               "or run it again")
        log.info("%s: auto kept the base model %s", folder, summary.get("base_model"))
        return summary.get("base_model") or DEFAULT_MODEL
    chosen = folder / "model"
    if not chosen.is_dir():
        raise EmbtuneError(f"{folder}: auto.json chose {summary['chosen']} but {chosen} is missing; run `embtune auto` "
                           "again")
    return str(chosen)


def model_or_tuner(model) -> tuple[Any, Path | None]:
    """(model, tuner folder or None) for what ``--model`` names: an `embtune auto` folder becomes what it chose, and a
    tuner folder (from `embtune tune -o`, or auto's choice) becomes (None, folder): its base model comes from tuning.json."""
    path = Path(str(model)) if isinstance(model, (str, Path)) else None
    if path is not None and (path / AUTO_FILE).is_file():
        model = auto_choice(path)
        path = Path(model)
    if path is not None and is_tuner_folder(path):
        return None, path
    return model, None


def open_model(model, data, *, device: str = "auto", cache=None, backend: str = "torch"):
    """The encoder ``--model`` names, for a corpus ``data``: a model (see :func:`~embtune.encoders.encoder_for`), a
    tuner folder from `embtune tune -o` (its base model's vectors through the tuner), or an `embtune auto` folder
    (whatever it chose: a tuner, a fine-tuned model, or the base model)."""
    model, folder = model_or_tuner(model)
    if folder is None:
        return encoder_for(model, data, device=device, cache=cache, backend=backend)
    if backend != "torch":
        raise EmbtuneError(f"{folder} is a tuner folder; --backend {backend} runs plain models: drop --backend")
    tuner, base_model = tuner_and_base_model(folder, None, cache, device)
    return TunedEncoder(encoder_for(base_model, data, device=device, cache=cache), tuner, folder, cache)
