"""Small parts the image objectives share: projection / prediction heads, a pixel decoder, the EMA update, and
the base class that turns a batch of image paths into seeded augmented views. Heads live in the objective and are
dropped at export: only the backbone is the new encoder."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from embtune.data.image_augment import views
from embtune.training.objectives.base import Objective


def mlp_head(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """SimCLR / BYOL head: linear -> batch norm -> ReLU -> linear."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim_out))


class PixelDecoder(nn.Module):
    """A vector -> a small image (3 x size x size, in the backbone's input scale): linear to a 4x4 map, then
    transposed convolutions doubling the side until ``size``. Used by the autoencoder and inpainting objectives."""

    def __init__(self, dim_in: int, size: int = 32, width: int = 128):
        super().__init__()
        if size < 4 or size & (size - 1):
            raise ValueError(f"decoder size must be a power of two >= 4 (got {size})")
        self.size, self.width = size, width
        self.project = nn.Linear(dim_in, width * 16)
        layers: list[nn.Module] = []
        side, channels = 4, width
        while side < size:
            out = max(16, channels // 2)
            layers += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            side, channels = side * 2, out
        layers.append(nn.Conv2d(channels, 3, 3, padding=1))
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.project(z).view(-1, self.width, 4, 4))


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online (parameters and float buffers)."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        if t.dtype.is_floating_point:
            t.copy_(o)


class ImageObjective(Objective):
    """Base for objectives on image models: items are image paths; ``batch`` draws the seed of this batch's
    augmentations from the trainer's random state, so views are reproducible and a resumed run sees the same ones."""

    data: ClassVar[str] = "images"
    length_grouping: ClassVar[bool] = False  # images have no length
    defaults: ClassVar[dict] = {"learning_rate": 1e-4, "batch_size": 64}
    head_lr_scale: ClassVar[float] = 10.0  # new heads start from random weights: let them catch up with the backbone

    def __init__(self, augmentation: str = "simclr", strength: float = 1.0):
        super().__init__()
        self.augmentation, self.strength = augmentation, strength
        self.view_recipes = views(augmentation, strength)

    def batch(self, items: list, rng: np.random.Generator):
        return list(items), int(rng.integers(2**62))

    def two_views(self, model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clean images, view 1, view 2) as floats in [0, 1] on the model's device."""
        paths, seed = batch
        images = model.images(paths)
        generator = torch.Generator(device=images.device).manual_seed(seed)
        first, second = self.view_recipes
        return images, first(images, generator), second(images, generator)

    def normalized(self, model, images: torch.Tensor) -> torch.Tensor:
        """Images in the backbone's input scale (the target space of pixel decoders)."""
        return (images - model.mean) / model.std
