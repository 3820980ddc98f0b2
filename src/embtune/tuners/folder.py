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

from embtune.atomic import atomic_write_text
from embtune.encoders import DEFAULT_MODEL, load_encoder, resolve_model
from embtune.encoders.encode import encode_items
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

TUNING_FILE = "tuning.json"  # written next to a saved tuner: base model, method, data, before/after metrics


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


def space_after(after, before_model, cache=None, device: str = "auto"):
    """(name, function texts -> vectors, training record or None) for what a report's ``after`` names: a tuner folder
    (its base model's vectors passed through it, its epochs as the training record) or a model."""
    path = Path(str(after))
    if is_tuner_folder(path):
        tuner, meta = load_tuner_with_base(path)
        base = load_encoder(before_model or meta.get("base_model") or DEFAULT_MODEL, device=device, cache=cache)

        def tuned(texts):
            vectors, _ = encode_items(base, texts, cache=cache)
            return tuner.transform(vectors)

        record = {"losses": [[i + 1, v] for i, v in enumerate(getattr(tuner, "history_", []))], "history": [],
                  "loss_unit": "epoch", "method": meta.get("method"), "n_fit": meta.get("n_fit")}
        return f"{type(tuner).__name__} ({path.name})", tuned, record
    encoder = load_encoder(str(after), device=device, cache=cache)
    summary = path / "embtune.json"
    record = json.loads(summary.read_text()) if summary.is_file() else None

    def encoded(texts):
        vectors, _ = encode_items(encoder, texts, cache=cache)
        return vectors

    return encoder.name, encoded, record
