"""Text encoder backed by sentence-transformers: any local sentence-transformers or Hugging Face model folder.

The model is loaded on first use, so a run whose vectors are all in the cache never imports torch or loads weights.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embtune.data.vectors import l2_normalize
from embtune.encoders.base import ModelEncoder
from embtune.encoders.cache import VectorCache, directory_fingerprint
from embtune.nn.device import resolve_device
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

# No network at run time: make the Hugging Face libraries fail fast instead of trying a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")



def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def load_sentence_transformer(path: Path, device: str, max_seq_length: int | None = None):
    """Load a model folder with sentence-transformers (a plain Hugging Face folder gets mean pooling)."""
    _quiet_transformers()
    from sentence_transformers import SentenceTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise EmbtuneError(f"model folder {path} could not be loaded by sentence-transformers: {e}") from None
    if max_seq_length is not None:
        model.max_seq_length = int(max_seq_length)
    return model


def model_features(model, texts: list[str]) -> dict:
    """The model's own tokenisation of ``texts`` (padded to the longest, truncated to max_seq_length): ``preprocess``
    where the model has it (sentence-transformers 6, which deprecates ``tokenize``), else ``tokenize`` (older
    sentence-transformers, the USE port)."""
    return model.preprocess(texts) if hasattr(model, "preprocess") else model.tokenize(texts)


class SentenceTransformerEncoder(ModelEncoder):
    """Wraps a sentence-transformers model folder as an embtune :class:`~embtune.encoders.base.Encoder`.

    >>> enc = SentenceTransformerEncoder(resolve_model("all-MiniLM-L6-v2").path, name="all-MiniLM-L6-v2")
    >>> enc.encode(["hello world"]).shape
    (1, 384)
    """

    modality = "text"

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        device: str = "auto",
        max_seq_length: int | None = None,
        cache: VectorCache | None = None,
    ):
        self.path = Path(path)
        super().__init__(name=name or self.path.name, device=device, cache=cache)
        self.max_seq_length = max_seq_length

    def _load_model(self):
        """The ``SentenceTransformer``."""
        device = resolve_device(self.device_spec)
        log.debug("loading %s from %s on %s", self.name, self.path, device)
        return load_sentence_transformer(self.path, device, self.max_seq_length)

    @property
    def dim(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def device(self) -> str:
        return str(self.model.device)

    def _compute_fingerprint(self) -> str:
        return directory_fingerprint(self.path, self._cache_for_digests, extra=f"st|max_seq_length={self.max_seq_length}")

    def encode(
        self,
        items: Sequence[str],
        *,
        batch_size: int = 64,
        normalize: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        items = list(items)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.empty((len(items), self.dim), dtype=np.float32)
        # Batches of texts with the same token count waste no compute on padding. sentence-transformers sorts by
        # character length, which on short queries leaves ~27 % of the tokens as padding at batch size 64; sorting
        # by token count leaves ~6 %. Each batch goes through the model's own encode, so the vectors are identical.
        order = self._longest_first(items)
        for start in range(0, len(items), batch_size):
            index = order[start : start + batch_size]
            vectors[index] = self.model.encode(
                [items[i] for i in index],
                batch_size=len(index),
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
            if on_batch is not None:
                on_batch(len(index))
        return l2_normalize(vectors) if normalize else vectors

    def _longest_first(self, items: list[str]) -> np.ndarray:
        """Indices of ``items`` by decreasing token count (character count if the model has no usable tokenizer)."""
        try:
            lengths = self.model.tokenizer(
                items, add_special_tokens=True, truncation=True, max_length=self.model.max_seq_length, return_length=True
            )["length"]
        except Exception:  # e.g. a model whose first module tokenises differently: fall back to characters
            lengths = [len(t) for t in items]
        return np.argsort(-np.asarray(lengths), kind="stable")

    def save(self, path: str | Path) -> None:
        self.model.save(str(path), safe_serialization=True)
