"""Encoders: one protocol, several backends, and a disk cache of vectors."""

from __future__ import annotations

from embtune.encoders.base import Encoder
from embtune.encoders.cache import VectorCache, text_key
from embtune.encoders.resolve import DEFAULT_MODEL, ResolvedModel, resolve_model
from embtune.errors import EmbtuneError

CALIBRATED_BACKENDS = ("openvino-int8",)  # backends whose export is calibrated on texts of the corpus they encode


def load_encoder(model: str | Encoder | None = None, *, device: str = "auto", cache: VectorCache | None = None,
                 backend: str = "torch", min_cosine: float | None = None,
                 calibration: list[str] | None = None) -> Encoder:
    """An :class:`Encoder` for ``model``: a shipped model name, a local model folder, or an encoder object.

    Weights load lazily, on the first encode that misses the cache. ``backend`` "onnx" / "onnx-int8" (ONNX Runtime) or
    "openvino" / "openvino-int8" (OpenVINO) runs a sentence-transformers / Hugging Face text model outside torch
    (exported once, checked against torch: an export whose mean cosine falls below ``min_cosine``, default 0.99, is
    refused). "openvino-int8" is calibrated on ``calibration`` (texts of the corpus to encode; see
    :func:`embtune.encoders.openvino.spread_sample`), or on the demo corpus without it.

    >>> encoder = load_encoder("all-MiniLM-L6-v2")
    >>> encoder.encode(["hello"]).shape
    (1, 384)
    """
    if model is not None and not isinstance(model, str) and isinstance(model, Encoder):
        return model
    resolved = resolve_model(model)
    if backend != "torch":
        from embtune.encoders.exported import BACKENDS, DEFAULT_MIN_COSINE

        if backend not in BACKENDS:
            raise EmbtuneError(f"--backend {backend!r}: use one of {', '.join(BACKENDS)}")
        if resolved.backend not in ("sentence-transformers", "transformers"):
            raise EmbtuneError(f"--backend {backend} runs sentence-transformers / Hugging Face text models; "
                               f"{resolved.name} is a {resolved.backend} model: drop --backend")
        if device not in ("auto", "cpu"):
            raise EmbtuneError(f"--backend {backend} runs on the CPU; drop --device {device} or use --backend torch")
        options = dict(name=resolved.name, variant=backend, cache=cache,
                       min_cosine=DEFAULT_MIN_COSINE if min_cosine is None else min_cosine)
        if backend.startswith("openvino"):
            from embtune.encoders.openvino import OpenVinoEncoder

            return OpenVinoEncoder(resolved.path, calibration=calibration, **options)
        from embtune.encoders.onnx import OnnxEncoder

        return OnnxEncoder(resolved.path, **options)
    if device not in ("auto", "cpu"):  # an impossible device fails now, not after reading the corpus
        from embtune.nn.device import resolve_device

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


def open_cache(cache: bool | VectorCache) -> VectorCache | None:
    """The vector cache a public function was given: a VectorCache as it is, True the default one, False none."""
    if isinstance(cache, VectorCache):
        return cache
    return VectorCache() if cache else None


def encoder_for(model, data, *, device: str = "auto", cache: VectorCache | None = None, backend: str = "torch") -> Encoder:
    """The encoder for a :class:`~embtune.data.corpus.Corpus`: the default model follows the corpus (all-MiniLM-L6-v2
    for texts, EfficientNet-Lite0 for images); a text model on images, or the reverse, is refused with what to pass."""
    from embtune.encoders.image import DEFAULT_IMAGE_MODEL

    images = data.unit == "images"
    if images and (model is None or (isinstance(model, str) and model == DEFAULT_MODEL)):
        model = DEFAULT_IMAGE_MODEL
    calibration = data.texts if backend in CALIBRATED_BACKENDS and not images else None
    encoder = load_encoder(model, device=device, cache=cache, backend=backend, calibration=calibration)
    wanted = "image" if images else "text"
    if getattr(encoder, "modality", "text") != wanted:
        where = data.path or "the corpus"
        hint = f"--model {DEFAULT_IMAGE_MODEL} (or an image model folder)" if images else f"--model {DEFAULT_MODEL}"
        raise EmbtuneError(f"{where} holds {data.unit} but {encoder.name} is a {encoder.modality} model; pass {hint}")
    return encoder


__all__ = ["CALIBRATED_BACKENDS", "DEFAULT_MODEL", "Encoder", "ResolvedModel", "VectorCache", "encoder_for", "load_encoder", "open_cache",
           "resolve_model", "text_key"]
