"""TextCNNClassifier: Conv1D (several widths) -> masked global max pool -> dense, over a pretrained model's token
embeddings (Kim 2014), as a scikit-learn classifier.

The tokens always come from the pretrained model's own tokenizer, saved with the classifier, so the ids always index
the embedding matrix they were made for; fitting a new tokenizer over pretrained vectors (the classic mistake) is
impossible here, and a tokenizer larger than its embedding matrix raises.

- ``features="static"``: the model's input embedding matrix (one vector per token id, no context);
  ``features="contextual"``: the transformer's output for each token.
- ``embeddings="frozen"`` (default), ``"trainable"``, or ``"random"`` (same tokenizer and shape, random init, trained:
  the baseline that shows what pretraining is worth). ``unfreeze_after=N`` trains frozen for N epochs, then unfreezes
  the embeddings at ``learning_rate * unfreeze_lr_factor``.
- Padding never wins the max pool: padded positions are zeroed before the convolutions, and pooled windows are only
  those that start inside the text, so a text's prediction does not depend on what it is batched with.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embtune.downstream.base import ClassifierBase, check_texts, encode_labels
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)


def vocab_digest(tokenizer) -> str:
    """A fingerprint of a tokenizer's vocabulary: token -> id, order-independent."""
    items = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


class _StaticTokens(nn.Module):
    def __init__(self, weight: torch.Tensor, trainable: bool):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(weight, freeze=not trainable)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)


class _ContextualTokens(nn.Module):
    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        grad = any(p.requires_grad for p in self.transformer.parameters())
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return self.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state


class TextCNN(nn.Module):
    """Token vectors -> Conv1D per kernel size -> ReLU -> masked max over positions -> dropout -> linear."""

    def __init__(self, tokens: nn.Module, dim: int, n_outputs: int, kernel_sizes, n_filters: int, dropout: float,
                 pad_id: int):
        super().__init__()
        self.tokens = tokens
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.pad_id = int(pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(dim, n_filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(n_filters * len(self.kernel_sizes), n_outputs)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        width = max(int(lengths.max()), max(self.kernel_sizes))
        if ids.shape[1] < width:
            ids = F.pad(ids, (0, width - ids.shape[1]), value=self.pad_id)
        ids = ids[:, :width]
        positions = torch.arange(width, device=ids.device)
        mask = positions.unsqueeze(0) < lengths.unsqueeze(1)
        x = self.tokens(ids, mask) * mask.unsqueeze(-1)  # padding contributes exact zeros
        x = x.transpose(1, 2)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = F.relu(conv(x))  # (batch, filters, width - k + 1)
            starts = torch.arange(h.shape[2], device=ids.device)
            # windows that start inside the text; a text shorter than k keeps its first window (text + zeros)
            valid = starts.unsqueeze(0) < (lengths - k + 1).clamp(min=1).unsqueeze(1)
            pooled.append(h.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=2))
        return self.out(self.dropout(torch.cat(pooled, dim=1)))


def _load_backbone(model: str):
    """(tokenizer, transformer) of a model name or folder, loaded offline."""
    from embtune.encoders import resolve_model
    from embtune.encoders.sentence_transformer import load_sentence_transformer

    st = load_sentence_transformer(resolve_model(model).path, "cpu")
    first = st[0]
    if not hasattr(first, "auto_model") or not hasattr(first, "tokenizer"):
        raise EmbtuneError(f"{model}: its first module is not a transformer with a tokenizer; TextCNN needs token embeddings")
    return first.tokenizer, first.auto_model


class TextCNNClassifier(ClassifierBase):
    """Conv1D text classifier over a pretrained model's token embeddings, with that model's tokenizer.

    >>> clf = TextCNNClassifier(model="all-MiniLM-L6-v2", embeddings="frozen").fit(texts, labels)
    >>> clf.predict(["my card has not arrived"])
    >>> clf.save("clf/"); same = load_classifier("clf/")
    """

    def __init__(self, model: str = "all-MiniLM-L6-v2", features: str = "static", embeddings: str = "frozen",
                 unfreeze_after: int | None = None, unfreeze_lr_factor: float = 0.1, kernel_sizes=(2, 3, 4),
                 n_filters: int = 100, dropout: float = 0.5, max_length: int = 64, n_epochs: int = 30,
                 batch_size: int = 32, learning_rate: float = 1e-3, validation_fraction: float = 0.1,
                 n_iter_no_change: int | None = 4, class_weight=None, multi_label: bool = False, random_state=0,
                 device: str = "auto"):
        self.model = model
        self.features = features
        self.embeddings = embeddings
        self.unfreeze_after = unfreeze_after
        self.unfreeze_lr_factor = unfreeze_lr_factor
        self.kernel_sizes = kernel_sizes
        self.n_filters = n_filters
        self.dropout = dropout
        self.max_length = max_length
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.multi_label = multi_label
        self.random_state = random_state
        self.device = device

    # -- building -------------------------------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.features not in ("static", "contextual"):
            raise EmbtuneError(f"features={self.features!r}: use 'static' or 'contextual'")
        if self.embeddings not in ("frozen", "trainable", "random"):
            raise EmbtuneError(f"embeddings={self.embeddings!r}: use 'frozen', 'trainable' or 'random'")
        if self.unfreeze_after is not None and (self.embeddings != "frozen" or self.unfreeze_after < 0):
            raise EmbtuneError("unfreeze_after needs embeddings='frozen' and a number of epochs >= 0")
        if not self.kernel_sizes or min(self.kernel_sizes) < 1:
            raise EmbtuneError("kernel_sizes must be a non-empty list of positive widths")

    def _tokens_module(self, tokenizer, transformer, generator) -> tuple[nn.Module, int]:
        from embtune.nn.seeding import seeded_init

        if self.features == "static":
            weight = transformer.get_input_embeddings().weight.detach().clone().float()
            if len(tokenizer) > weight.shape[0]:
                raise EmbtuneError(
                    f"{self.model}: its tokenizer has {len(tokenizer)} tokens but its embedding matrix only "
                    f"{weight.shape[0]} rows; they do not belong together"
                )
            if self.embeddings == "random":
                with seeded_init(generator):
                    weight = torch.randn_like(weight) * weight.std()
            return _StaticTokens(weight, trainable=self.embeddings != "frozen"), weight.shape[1]
        if self.embeddings == "random":
            from transformers import AutoModel

            with seeded_init(generator):
                transformer = AutoModel.from_config(transformer.config)
        transformer.requires_grad_(self.embeddings != "frozen")
        return _ContextualTokens(transformer), transformer.config.hidden_size

    def _tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.tokenizer_(texts, truncation=True, max_length=self.max_length, padding=False)["input_ids"]
        lengths = torch.tensor([len(ids) for ids in encoded])
        ids = torch.full((len(encoded), int(lengths.max())), self.pad_id_, dtype=torch.long)
        for i, row in enumerate(encoded):
            ids[i, : len(row)] = torch.tensor(row)
        return ids, lengths

    # -- fitting --------------------------------------------------------------------------------------------------

    def fit(self, X, y):
        from embtune.nn.device import resolve_device
        from embtune.nn.seeding import seeded_init, torch_generator
        from embtune.nn.epochs import run_epochs

        self._check_params()
        texts = check_texts(X, "X")
        self.classes_, targets = encode_labels(texts, y, self.multi_label)
        device = resolve_device(self.device)
        generator = torch_generator(self.random_state)
        tokenizer, transformer = _load_backbone(self.model)
        self.tokenizer_ = tokenizer
        self.pad_id_ = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        tokens, dim = self._tokens_module(tokenizer, transformer, generator)
        n_out = len(self.classes_)
        with seeded_init(generator):
            self.network_ = TextCNN(tokens, dim, n_out, self.kernel_sizes, self.n_filters, self.dropout, self.pad_id_)
        self.network_.to(device)
        self._set_fitted_facts(tokenizer, dim)

        ids, lengths = self._tokenize(texts)
        target = torch.as_tensor(targets, dtype=torch.float32 if self.multi_label else torch.long)
        train_idx, val_idx = self._validation_split(targets, generator)
        data = [t[train_idx].to(device) for t in (ids, lengths, target)]
        validation = [t[val_idx].to(device) for t in (ids, lengths, target)] if len(val_idx) else None
        loss_fn = self._loss_fn(targets, device)

        def batch_loss(batch_ids, batch_lengths, batch_y):
            return loss_fn(self.network_(batch_ids[:, : int(batch_lengths.max())], batch_lengths), batch_y)

        stop = self.n_iter_no_change if validation is not None else None
        phases = [(self.n_epochs, None)]
        if self.unfreeze_after is not None:
            phases = [(min(self.unfreeze_after, self.n_epochs), None),
                      (self.n_epochs - min(self.unfreeze_after, self.n_epochs), "unfreeze")]
        self.history_, self.n_epochs_ = [], 0
        for epochs, action in phases:
            if epochs <= 0:
                continue
            if action == "unfreeze":
                self.network_.tokens.requires_grad_(True)
            optimizer = self._optimizer(unfrozen=action == "unfreeze")
            record = run_epochs(self.network_, optimizer, batch_loss, data, n_epochs=epochs, batch_size=self.batch_size,
                                generator=generator, validation=validation, n_iter_no_change=stop,
                                name="TextCNNClassifier")
            self.history_ += record.val_loss or record.train_loss
            self.n_epochs_ += record.epochs
        self.network_.eval()
        return self

    def _set_fitted_facts(self, tokenizer, dim: int) -> None:
        self.vocab_size_ = len(tokenizer)
        self.vocab_digest_ = vocab_digest(tokenizer)
        self.dim_ = dim

    def _validation_split(self, targets, generator) -> tuple[np.ndarray, np.ndarray]:
        n = len(targets)
        n_val = int(round(self.validation_fraction * n)) if self.n_iter_no_change is not None else 0
        if n_val < 10 or n - n_val < 2:
            return np.arange(n), np.array([], dtype=int)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        if not self.multi_label and n_val >= len(self.classes_):
            from sklearn.model_selection import train_test_split

            try:
                train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, stratify=targets, random_state=seed)
                return np.sort(train_idx), np.sort(val_idx)
            except ValueError:
                pass  # some class has a single example: fall back to a plain random split
        order = np.random.default_rng(seed).permutation(n)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def _loss_fn(self, targets, device):
        if self.multi_label:
            return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y)
        weight = None
        if self.class_weight is not None:
            from sklearn.utils.class_weight import compute_class_weight

            values = compute_class_weight(self.class_weight, classes=np.arange(len(self.classes_)), y=targets) \
                if self.class_weight == "balanced" else \
                np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
            weight = torch.as_tensor(values, dtype=torch.float32, device=device)
        return lambda logits, y: F.cross_entropy(logits, y, weight=weight)

    def _optimizer(self, unfrozen: bool) -> torch.optim.Optimizer:
        tokens = [p for p in self.network_.tokens.parameters() if p.requires_grad]
        head = [p for n, p in self.network_.named_parameters() if not n.startswith("tokens.")]
        groups = [{"params": head, "lr": self.learning_rate}]
        if tokens:
            scale = self.unfreeze_lr_factor if unfrozen else (1.0 if self.features == "static" else 0.02)
            groups.append({"params": tokens, "lr": self.learning_rate * scale})
        return torch.optim.Adam(groups)

    # -- predicting -----------------------------------------------------------------------------------------------

    def _logits(self, X) -> torch.Tensor:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "network_")
        texts = check_texts(X, "X")
        ids, lengths = self._tokenize(texts)
        device = next(self.network_.parameters()).device
        self.network_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), 256):
                batch_lengths = lengths[start : start + 256]
                batch_ids = ids[start : start + 256, : int(batch_lengths.max())]
                out.append(self.network_(batch_ids.to(device), batch_lengths.to(device)).float().cpu())
        return torch.cat(out)

    def predict_proba(self, X) -> np.ndarray:
        logits = self._logits(X)
        return (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)).numpy()

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.multi_label:
            return (proba >= 0.5).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    # -- persistence ----------------------------------------------------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        return {"vocab_size_": self.vocab_size_, "vocab_digest_": self.vocab_digest_, "dim_": self.dim_,
                "pad_id_": self.pad_id_, "history_": self.history_, "n_epochs_": self.n_epochs_}

    def _save_weights(self, path: Path) -> None:
        from safetensors.torch import save

        from embtune.atomic import atomic_open

        self.tokenizer_.save_pretrained(str(path / "tokenizer"))
        if self.features == "contextual":
            self.network_.tokens.transformer.config.save_pretrained(str(path / "encoder"))
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.network_.state_dict().items()}
        with atomic_open(path / "model.safetensors", "wb") as f:
            f.write(save(tensors))

    def _load_weights(self, path: Path, state: dict[str, Any]) -> None:
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        from embtune.nn.device import resolve_device

        self.tokenizer_ = AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True)
        if len(self.tokenizer_) != state["vocab_size_"] or vocab_digest(self.tokenizer_) != state["vocab_digest_"]:
            raise EmbtuneError(f"{path / 'tokenizer'}: not the tokenizer this classifier was trained with "
                               "(its vocabulary differs); save and load the folder as a whole")
        for key in ("vocab_size_", "vocab_digest_", "dim_", "pad_id_", "history_", "n_epochs_"):
            setattr(self, key, state[key])
        weights = load_file(str(path / "model.safetensors"))
        if self.features == "static":
            tokens = _StaticTokens(weights["tokens.embedding.weight"], trainable=False)
        else:
            from transformers import AutoConfig, AutoModel

            config = AutoConfig.from_pretrained(str(path / "encoder"), local_files_only=True)
            tokens = _ContextualTokens(AutoModel.from_config(config))
            tokens.transformer.requires_grad_(False)
        self.network_ = TextCNN(tokens, self.dim_, len(self.classes_), self.kernel_sizes, self.n_filters, self.dropout,
                                self.pad_id_)
        self.network_.load_state_dict(weights)
        self.network_.to(resolve_device(self.device)).eval()
