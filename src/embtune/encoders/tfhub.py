"""TF Hub modules and TensorFlow SavedModels as embtune encoders (optional extra: ``pip install 'embtune[tf]'``).

``--model tfhub:/path/to/savedmodel`` loads a local SavedModel with ``tensorflow_hub.load``. A text model takes a batch
of strings and returns (n, d) vectors; an image model takes float32 images (n, H, W, 3) in [0, 1] (the TF Hub
convention) and returns (n, d). Which one it is, and the image size, are read from the model's call signature. Models
whose output is a dict use its ``default`` (or only 2-D) entry. Fine-tuning runs in TensorFlow (training/tf_loop.py):
the torch trainer cannot train TF variables.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embtune.encoders.base import ModelEncoder
from embtune.errors import EmbtuneError, ModelNotFoundError

log = logging.getLogger(__name__)

PREFIX = "tfhub:"
DEFAULT_IMAGE_SIZE = 224


def import_tf():
    """(tensorflow, tensorflow_hub), or a clear error saying which extra to install."""
    try:
        import tensorflow as tf
        import tensorflow_hub as hub
    except ImportError as e:
        raise ModelNotFoundError(
            f"--model {PREFIX}...: TensorFlow is not installed ({e.name}); run `pip install 'embtune[tf]'` "
            "(tensorflow-cpu, tensorflow-hub)"
        ) from None
    return tf, hub


def tfhub_path(spec: str) -> Path:
    """The local folder named by ``tfhub:PATH``; a hub URL or handle is refused (no network) with how to get it."""
    target = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    if target.startswith(("http://", "https://", "gs://")) or (not Path(target).expanduser().exists()
                                                              and target.count("/") >= 2 and not target.startswith((".", "/", "~"))):
        raise ModelNotFoundError(
            f"--model {spec}: a TF Hub address, and embtune never downloads. On a machine with internet, download "
            "the model (on tfhub.dev / Kaggle Models: 'Download' as a .tar.gz, or `hub.resolve(handle)` prints "
            f"the cached folder), unpack it here and pass --model {PREFIX}/path/to/folder"
        )
    path = Path(target).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(f"--model {spec}: no such folder")
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        raise ModelNotFoundError(f"--model {spec}: {path} holds no saved_model.pb; point to the SavedModel folder")
    return path.resolve()


def _as_matrix(output, where: str) -> "object":
    """The (n, d) tensor of a model's output: the tensor itself, or the 'default' / only 2-D entry of a dict."""
    if isinstance(output, dict):
        if "default" in output:
            output = output["default"]
        else:
            matrices = [v for v in output.values() if len(getattr(v, "shape", ())) == 2]
            if len(matrices) != 1:
                raise EmbtuneError(f"{where}: the model returns {sorted(output)}; expected one (n, d) output")
            output = matrices[0]
    if len(output.shape) != 2:
        raise EmbtuneError(f"{where}: the model returns shape {tuple(output.shape)}; expected (n, d) vectors")
    return output


def _call_specs(module) -> list:
    """The input TensorSpecs of the module's concrete call functions (empty when it has none listed)."""
    specs = []
    functions = []
    call = getattr(module, "__call__", None)
    if call is not None and hasattr(call, "concrete_functions"):
        functions += list(call.concrete_functions)
    signatures = getattr(module, "signatures", {}) or {}
    functions += list(signatures.values())
    for function in functions:
        try:
            args = function.structured_input_signature[0]
            kwargs = function.structured_input_signature[1]
            specs += [s for s in list(args) + list(kwargs.values()) if hasattr(s, "dtype")]
        except (AttributeError, IndexError, TypeError):
            continue
    return specs


class TFHubModel:
    """A loaded SavedModel, its modality and input size, and the calls the encoder and the TF loop need."""

    def __init__(self, path: Path, *, image_size: int | None = None):
        self.tf, self.hub = import_tf()
        self.path = Path(path)
        try:
            self.module = self.hub.load(str(self.path))
        except Exception as e:  # a torn or foreign folder: say which and why
            raise ModelNotFoundError(f"{self.path}: TensorFlow could not load this SavedModel ({type(e).__name__}: {e})") from None
        if not callable(self.module):
            raise EmbtuneError(f"{self.path}: the SavedModel is not callable (no __call__); save it with a call function")
        tf = self.tf
        specs = _call_specs(self.module)
        self.modality = None
        for spec in specs:
            if spec.dtype == tf.string:
                self.modality = "text"
            elif spec.dtype.is_floating and len(spec.shape) == 4:
                self.modality = "image"
                if spec.shape[1] is not None:
                    image_size = image_size or int(spec.shape[1])
        self.image_size = image_size or DEFAULT_IMAGE_SIZE
        if self.modality is None:  # no signature listed: try a string batch, then an image batch
            for modality in ("text", "image"):
                try:
                    self._raw(self._probe(modality))
                    self.modality = modality
                    break
                except Exception:  # noqa: BLE001 - any failure means "not this kind of input"
                    continue
        if self.modality is None:
            shown = ", ".join(f"{s.dtype.name}{list(s.shape)}" for s in specs) or "none listed"
            raise EmbtuneError(
                f"{self.path}: the SavedModel takes neither a batch of strings nor float images (n, H, W, 3) "
                f"(its input signatures: {shown}); embtune encodes texts or images"
            )
        self.dim = int(self._raw(self._probe(self.modality)).shape[1])

    def _probe(self, modality: str):
        if modality == "text":
            return self.tf.constant(["probe"])
        return self.tf.zeros([1, self.image_size, self.image_size, 3], dtype=self.tf.float32)

    def _raw(self, inputs, training: bool = False):
        try:
            output = self.module(inputs, training=training) if training else self.module(inputs)
        except TypeError:  # a plain tf.function without a `training` argument
            output = self.module(inputs)
        return _as_matrix(output, str(self.path))

    def inputs(self, items: Sequence[str]):
        """Texts as a string tensor, or image paths decoded to (n, H, W, 3) float32 in [0, 1]."""
        tf = self.tf
        if self.modality == "text":
            return tf.constant(list(items))
        from embtune.data.images import load_image

        pixels = np.stack([load_image(p, self.image_size).permute(1, 2, 0).numpy() for p in items])
        return tf.constant(pixels.astype(np.float32) / 255.0)

    def __call__(self, inputs, training: bool = False):
        return self._raw(inputs, training=training)

    @property
    def trainable_variables(self) -> list:
        """The Hub convention's ``trainable_variables`` when the SavedModel lists them, else every trainable variable
        reachable from the loaded object (a saved tf.Module or Keras model restores its variables, not that list)."""
        listed = getattr(self.module, "trainable_variables", None)
        if listed:
            return list(listed)
        found, seen = [], set()
        for obj in self.tf.train.TrackableView(self.module).descendants():
            if isinstance(obj, self.tf.Variable) and obj.trainable and id(obj) not in seen:
                seen.add(id(obj))
                found.append(obj)
        return found

    def encode(self, items: Sequence[str], batch_size: int = 64, on_batch=None, **_) -> np.ndarray:
        items = list(items)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            out[start : start + len(chunk)] = self(self.inputs(chunk)).numpy().astype(np.float32)
            if on_batch is not None:
                on_batch(len(chunk))
        return out


class TFHubEncoder(ModelEncoder):
    """``--model tfhub:PATH`` as an :class:`~embtune.encoders.base.Encoder` (frozen; fine-tuning is `embtune finetune`)."""

    def __init__(self, spec: str, *, cache=None):
        self.path = tfhub_path(spec)
        super().__init__(name=f"{PREFIX}{self.path.name}", cache=cache)

    def _load_model(self) -> TFHubModel:
        return TFHubModel(self.path)

    @property
    def modality(self) -> str:
        return self.model.modality

    def _compute_fingerprint(self) -> str:
        from embtune.encoders.cache import directory_fingerprint

        return "tfhub|" + directory_fingerprint(self.path, self._cache_for_digests)

    def item_key(self, item: str) -> bytes:
        from embtune.encoders.cache import text_key

        if self.modality == "image":
            from embtune.encoders.image import image_key

            return image_key(item)  # path + size + mtime
        return text_key(item)

    def module(self):
        raise EmbtuneError(f"{self.name} is a TensorFlow model: fine-tune it with `embtune finetune --model "
                           f"{PREFIX}{self.path}` (TensorFlow loop), not the torch trainer")

    def save(self, path: str | Path) -> None:
        tf, _ = import_tf()
        tf.saved_model.save(self.model.module, str(path))
