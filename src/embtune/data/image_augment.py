"""Image augmentations in plain torch, a whole batch at once on the batch's device (torchvision has no CPU build here).

Every random draw comes from the ``torch.Generator`` passed in, so a seeded run (and a resumed one) sees the same
views. Images are float tensors (n, 3, H, W) in [0, 1]; every operation keeps that range.

Presets: ``SIMCLR`` (Chen et al. 2020) and the two asymmetric ``BYOL`` views (Grill et al. 2020). The default crop
scale is (0.2, 1) rather than SimCLR's (0.08, 1): starting from a pretrained model on small images, crops of 8 % of
a 32-pixel photo hold almost nothing of the object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

_GRAY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ImageAugmentation:
    """One view's recipe; call it on a batch: ``view = SIMCLR(images, generator)``."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # in pixels at 224; scaled with the image size
    solarize_p: float = 0.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = random_resized_crop(images, generator, self.crop_scale, self.crop_ratio, self.flip_p)
        if self.jitter_p > 0:
            x = color_jitter(x, generator, *self.jitter, p=self.jitter_p)
        if self.gray_p > 0:
            x = random_grayscale(x, generator, self.gray_p)
        if self.blur_p > 0:
            x = gaussian_blur(x, generator, self.blur_sigma, self.blur_p)
        if self.solarize_p > 0:
            x = solarize(x, generator, self.solarize_p)
        return x


SIMCLR = ImageAugmentation()
BYOL = (
    ImageAugmentation(gray_p=0.2, blur_p=1.0, solarize_p=0.0, jitter=(0.4, 0.4, 0.2, 0.1)),
    ImageAugmentation(gray_p=0.2, blur_p=0.1, solarize_p=0.2, jitter=(0.4, 0.4, 0.2, 0.1)),
)
PRESETS = {"simclr": (SIMCLR, SIMCLR), "byol": BYOL}


def views(preset: str, strength: float = 1.0) -> tuple[ImageAugmentation, ImageAugmentation]:
    """The two view recipes of ``preset``; ``strength`` scales colour jitter (0 = crops and flips only)."""
    if preset not in PRESETS:
        from embtune.errors import EmbtuneError

        raise EmbtuneError(f"augmentation preset {preset!r}: use one of {', '.join(PRESETS)}")
    first, second = PRESETS[preset]
    if strength == 1.0:
        return first, second
    return tuple(replace(v, jitter=tuple(j * strength for j in v.jitter), jitter_p=v.jitter_p * min(1.0, strength))
                 for v in (first, second))


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _chosen(n: int, p: float, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) < p


def random_resized_crop(images, generator, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip_p=0.5) -> torch.Tensor:
    """Crop a random area share in ``scale`` with aspect ratio in ``ratio``, resize to the input size, maybe mirror.

    One affine grid for the whole batch: each row's crop box is a scale + translation of the unit square.
    """
    n, device = images.shape[0], images.device
    area = _uniform(n, *scale, generator, device)
    log_ratio = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, device)
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(n, generator=generator, device=device) * 2 - 1) * (1 - width)
    cy = (torch.rand(n, generator=generator, device=device) * 2 - 1) * (1 - height)
    flip = torch.where(_chosen(n, flip_p, generator, device), -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = width * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = height, cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma plane (YIQ) by ``shift`` turns per image: a hue change that keeps luma."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    angle = shift * 2 * math.pi
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq)


def color_jitter(images, generator, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, *, p=0.8) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue changes, applied to a ``p`` share of the batch."""
    n, device = images.shape[0], images.device
    chosen = _chosen(n, p, generator, device).view(-1, 1, 1, 1)
    b = _uniform(n, 1 - brightness, 1 + brightness, generator, device).view(-1, 1, 1, 1)
    c = _uniform(n, 1 - contrast, 1 + contrast, generator, device).view(-1, 1, 1, 1)
    s = _uniform(n, 1 - saturation, 1 + saturation, generator, device).view(-1, 1, 1, 1)
    h = _uniform(n, -hue, hue, generator, device)
    x = (images * b).clamp(0, 1)
    mean = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 1)
    gray = _gray(x)
    x = ((x - gray) * s + gray).clamp(0, 1)
    if hue > 0:
        x = _adjust_hue(x, h).clamp(0, 1)
    return torch.where(chosen, x, images)


def random_grayscale(images, generator, p=0.2) -> torch.Tensor:
    chosen = _chosen(images.shape[0], p, generator, images.device).view(-1, 1, 1, 1)
    return torch.where(chosen, _gray(images).expand_as(images), images)


def gaussian_blur(images, generator, sigma=(0.1, 2.0), p=0.5) -> torch.Tensor:
    """Blur a ``p`` share of the batch with a random sigma (SimCLR: kernel ~10 % of the side; sigma given at 224 px)."""
    n, _, height, width = images.shape
    device = images.device
    chosen = _chosen(n, p, generator, device)
    side_scale = min(height, width) / 224
    sigmas = _uniform(n, *sigma, generator, device) * side_scale
    radius = max(1, int(min(height, width) * 0.05))
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=images.dtype)
    kernels = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigmas.clamp(min=1e-3).view(-1, 1) ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    identity = (offsets == 0).to(images.dtype).expand(n, -1)
    kernels = torch.where(chosen.view(-1, 1), kernels, identity).repeat_interleave(3, dim=0)  # (n*3, k)
    x = images.reshape(1, n * 3, height, width)
    x = F.pad(x, [radius, radius, radius, radius], mode="reflect")
    x = F.conv2d(x, kernels.view(n * 3, 1, 1, -1), groups=n * 3)
    x = F.conv2d(x, kernels.view(n * 3, 1, -1, 1), groups=n * 3)
    return x.view(n, 3, height, width)


def solarize(images, generator, p=0.2, threshold=0.5) -> torch.Tensor:
    chosen = _chosen(images.shape[0], p, generator, images.device).view(-1, 1, 1, 1)
    return torch.where(chosen & (images >= threshold), 1 - images, images)
