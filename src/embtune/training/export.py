"""Writing a trained model as a plain sentence-transformers folder (safetensors) with a model card.

The folder loads with ``SentenceTransformer(path)`` and with ``embtune ... --model path``. Objective heads (decoders,
second encoders, MLM heads) are not part of the model and are not written. Training state stays in ``checkpoints/``
beside the model files (sentence-transformers ignores it, and embtune's vector cache does not hash it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from embtune.atomic import FILE_MODE, atomic_write_text

CARD = "README.md"
SUMMARY = "embtune.json"


def model_card(summary: dict[str, Any]) -> str:
    before, after = summary.get("before") or {}, summary.get("after") or {}
    rows = "\n".join(
        f"| {name} | {before[name]:.4f} | {after[name]:.4f} | {after[name] - before[name]:+.4f} |"
        for name in sorted(set(before) & set(after))
    )
    table = ("| metric (held-out slice) | before | after | change |\n|---|---|---|---|\n" + rows) if rows else "(no evaluation)"
    if summary.get("backend") == "tfhub":
        library = "tensorflow-hub"
        load = ("A TensorFlow SavedModel: load with `hub.load(\"this-folder\")` or "
                "`embtune encode CORPUS --model tfhub:this-folder -o vectors.npy`")
    elif summary.get("backend") == "use":
        library = "embtune"
        load = "Load with `embtune encode CORPUS --model this-folder -o vectors.npy` (Universal Sentence Encoder port)"
    elif summary.get("modality") == "image":
        library = "embtune"
        load = ("Load with `embtune encode IMAGES/ --model this-folder -o vectors.npy`, or in Python with "
                "`embtune.encoders.image.ImageModel.load(\"this-folder\")`")
    else:
        library = "sentence-transformers"
        load = (f"Load with `SentenceTransformer(\"{summary.get('output', 'this-folder')}\")` or "
                "`embtune evaluate CORPUS --model this-folder`")
    return f"""---
library_name: {library}
tags: [sentence-transformers, embtune, {summary.get('objective', '')}]
base_model: {summary.get('base_model', '')}
---

# Fine-tuned with embtune

- Base model: {summary.get('base_model', '?')}
- Objective: {summary.get('objective', '?')} ({summary.get('objective_summary', '')})
- Training data: {summary.get('n_train', '?')} items from {summary.get('corpus', '?')}; held-out slice: {summary.get('n_eval', 0)}
- Steps: {summary.get('steps', '?')} (kept step {summary.get('kept_step', '?')}; stopped: {summary.get('stopped', '?')}),
  batch size {summary.get('batch_size', '?')}, learning rate {summary.get('learning_rate', '?')}, seed {summary.get('seed', '?')},
  {summary.get('seconds', 0):.0f} s

## Before / after on the held-out slice

{table}

{load}.
The full training history (losses and metrics per evaluation) is in `{SUMMARY}`.
"""


def export_model(model, output: Path, summary: dict[str, Any], *, save=None) -> Path:
    """Save ``model`` into ``output`` (files replaced one by one, atomically) with README.md and embtune.json.

    ``save(folder)`` writes the model's own files (default: ``model.save(folder, safe_serialization=True)``, the
    sentence-transformers call, which embtune's image and USE models share; a TF SavedModel passes its own).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    staging = output / ".export-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if save is None:
        model.save(str(staging), safe_serialization=True)
    else:
        save(staging)
    (staging / CARD).write_text(model_card(summary), encoding="utf-8")
    (staging / SUMMARY).write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    for path in sorted(staging.rglob("*")):
        target = output / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path, FILE_MODE)  # some savers write through mkstemp (0600): give them a plain file's mode
            os.replace(path, target)
    shutil.rmtree(staging, ignore_errors=True)
    return output


def write_summary(output: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(Path(output) / SUMMARY, json.dumps(summary, indent=1, default=str) + "\n")
