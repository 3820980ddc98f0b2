"""What an objective is: a small module that turns a batch of raw items into a loss. It never loops, saves or logs."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from embtune.encoders.sentence_transformer import model_features
from embtune.training.distributed import shard_and_gather


def tokenize(model, texts: list[str]) -> dict[str, Any]:
    """The model's own tokenisation of ``texts`` (padded to the longest, truncated to max_seq_length), on its device."""
    features = model_features(model, texts)
    device = next(model.parameters()).device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


def embed(model, texts: list[str]) -> torch.Tensor:
    """Sentence embeddings of ``texts`` with gradients (the model's own tokenizer, padding and pooling); for an image
    model, ``texts`` are image paths and this is its features of the un-augmented images.

    Under distributed training each process embeds its share of ``texts`` and gets the whole batch back, gradients
    included (:func:`embtune.training.distributed.shard_and_gather`).
    """
    if hasattr(model, "images"):
        return shard_and_gather(texts, lambda part: model(model.images(part)))
    return shard_and_gather(texts, lambda part: model(tokenize(model, part))["sentence_embedding"])


def item_text(item) -> str:
    """The text of a training item: items are texts, or tuples whose first element is the text."""
    return item[0] if isinstance(item, tuple) else item


def text_index(items: list) -> tuple[list[str], dict[str, int]]:
    """The texts of ``items`` and, for each distinct text, the position of its first occurrence."""
    texts = [item_text(item) for item in items]
    index: dict[str, int] = {}
    for i, text in enumerate(texts):
        index.setdefault(text, i)
    return texts, index


def encode_frozen(model, texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Embeddings without gradients or dropout (eval mode), as float32; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        vectors = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    model.train(was_training)
    return np.asarray(vectors, dtype=np.float32)


def duplicate_mask(texts: list[str], device) -> torch.Tensor:
    """mask[i, j] is True when texts i and j are identical (i != j): such pairs must not count as negatives."""
    ids = {}
    codes = torch.tensor([ids.setdefault(t, len(ids)) for t in texts], device=device)
    mask = codes.unsqueeze(0) == codes.unsqueeze(1)
    mask.fill_diagonal_(False)
    return mask


class Objective(torch.nn.Module):
    """Base class: ``batch(items, rng)`` builds what ``forward(model, batch)`` needs; ``forward`` returns the loss.

    Class attributes describe the objective to the trainer and the CLI:
    - ``name``: the --objective value;
    - ``data``: "texts" (label-free), "pairs" (anchor, positive[, negative]), "scored_pairs" (text1, text2, score),
      "labelled" (text, label) or "images" (image paths; label-free);
    - ``defaults``: recommended learning rate, batch size and steps for this objective;
    - ``default_anchor``: the weight of the pull towards the base model (:mod:`.anchor`) when the user gives none: 1
      for the instance-discrimination objectives, which otherwise spread an already strong model's clusters apart
      (bench/label_free.py), 0 for the rest;
    - ``length_grouping``: whether the trainer may batch texts of similar length together by default
      (:func:`embtune.training.batches.epoch_order`); off where the loss depends on which items share a batch beyond
      being in-batch negatives (same-label positives, per-batch cluster targets) and for images;
    - ``label_runs(items)``: ``(labels, per_label)`` where the loss wants several items of each label in a batch (the
      trainer then lays batches out with :func:`embtune.training.batches.label_order`), else None.

    Extra modules an objective owns (a decoder, a second encoder) are trained with the model and dropped at export.
    """

    name: ClassVar[str] = ""
    data: ClassVar[str] = "texts"
    defaults: ClassVar[dict[str, Any]] = {"learning_rate": 2e-5, "batch_size": 32}
    summary: ClassVar[str] = ""
    default_anchor: ClassVar[float] = 0.0
    length_grouping: ClassVar[bool] = True

    def setup(self, model, items: list) -> None:
        """Once, before the optimizer is built: create parameters that depend on the data (e.g. cluster centroids)."""

    def refresh(self, model, items: list, step: int) -> None:
        """Before every optimizer step: update corpus-level state (neighbour index, pseudo-labels) when due.

        State that must survive a resume lives in registered buffers, which checkpoints save.
        """

    def batch(self, items: list, rng: np.random.Generator) -> Any:
        return items

    def label_runs(self, items: list) -> tuple[list, int] | None:
        """``(label of each item, items per label in a batch)`` for label-aware batches; None: the plain order."""
        return None

    def forward(self, model, batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_parameters(self, model) -> list[torch.nn.Parameter]:
        """Trainable parameters of this objective that are not the model's (shared ones are listed once)."""
        model_params = {id(p) for p in model.parameters()}
        return [p for p in self.parameters() if id(p) not in model_params and p.requires_grad]

    def extra_state(self, model) -> dict[str, torch.Tensor]:
        """This objective's own tensors for checkpoints (not the model's, not tied copies of them)."""
        model_tensors = {t.data_ptr() for t in model.state_dict().values()}
        return {k: v for k, v in self.state_dict().items() if v.data_ptr() not in model_tensors}
