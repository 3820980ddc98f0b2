"""Encoders: one protocol, several backends, and a disk cache of vectors."""

from __future__ import annotations

from embtune.encoders.base import Encoder
from embtune.encoders.cache import VectorCache, text_key
from embtune.encoders.resolve import DEFAULT_MODEL, ResolvedModel, resolve_model


def load_encoder(model: str | Encoder | None = None, *, device: str = "auto", cache: VectorCache | None = None) -> Encoder:
    """An :class:`Encoder` for ``model``: a shipped model name, a local model folder, or an encoder object.

    Weights load lazily, on the first encode that misses the cache.

    >>> encoder = load_encoder("all-MiniLM-L6-v2")
    >>> encoder.encode(["hello"]).shape
    (1, 384)
    """
    if model is not None and not isinstance(model, str) and isinstance(model, Encoder):
        return model
    resolved = resolve_model(model)
    if device not in ("auto", "cpu"):  # an impossible device fails now, not after reading the corpus
        from embtune.encoders.device import resolve_device

        resolve_device(device)
    if resolved.backend == "tfhub":
        from embtune.encoders.tfhub import TFHubEncoder

        return TFHubEncoder(str(resolved.path), cache=cache)
    if resolved.backend == "use":
        from embtune.encoders.use import USEEncoder

        return USEEncoder(resolved.path if resolved.path.is_dir() else resolved.name, name=resolved.name,
                          device=device, cache=cache)
    if resolved.backend == "image":
        from embtune.encoders.image import ImageEncoder

        return ImageEncoder(resolved.path, name=resolved.name, device=device, cache=cache)
    from embtune.encoders.sentence_transformer import SentenceTransformerEncoder

    return SentenceTransformerEncoder(resolved.path, name=resolved.name, device=device, cache=cache)


__all__ = ["DEFAULT_MODEL", "Encoder", "ResolvedModel", "VectorCache", "load_encoder", "resolve_model", "text_key"]
