"""Corruptions of vectors used to make views and denoising inputs: dropout, Gaussian noise, feature masking."""

from __future__ import annotations

import torch

KINDS = ("dropout", "gaussian", "mask")


def corrupt(x: torch.Tensor, kinds: tuple[str, ...], level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply each corruption in ``kinds`` at strength ``level``.

    - dropout: zero each feature with probability ``level`` and rescale the rest by 1/(1-level);
    - gaussian: add noise with standard deviation ``level`` times each vector's RMS feature size;
    - mask: zero one contiguous block of ``level`` of the features.
    """
    out = x
    for kind in kinds:
        if kind == "dropout":
            keep = torch.rand(out.shape, generator=generator, device="cpu").to(out.device) >= level
            out = out * keep / (1 - level)
        elif kind == "gaussian":
            scale = out.pow(2).mean(dim=1, keepdim=True).sqrt()
            out = out + level * scale * torch.randn(out.shape, generator=generator, device="cpu").to(out.device)
        elif kind == "mask":
            width = max(1, int(level * out.shape[1]))
            start = torch.randint(0, out.shape[1] - width + 1, (out.shape[0], 1), generator=generator).to(out.device)
            columns = torch.arange(out.shape[1], device=out.device)
            out = out.masked_fill((columns >= start) & (columns < start + width), 0.0)
        else:
            raise ValueError(f"unknown corruption {kind!r}; use any of {KINDS}")
    return out


def check_kinds(value, name: str) -> tuple[str, ...]:
    kinds = (value,) if isinstance(value, str) else tuple(value or ())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"{name}={value!r}: unknown corruption(s) {unknown}; use any of {KINDS}")
    return kinds
