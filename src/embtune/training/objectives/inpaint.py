"""inpaint: masked-patch inpainting (context encoders, Pathak et al. 2016, with MAE-style random patches). Random
grid cells of each image are greyed out; the backbone's features of the masked image feed a decoder that predicts
the image at ``size`` x ``size``; the loss counts the masked cells only. The decoder is dropped at export."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from embtune.errors import EmbtuneError
from embtune.training.objectives.image_heads import ImageObjective, PixelDecoder


class InpaintObjective(ImageObjective):
    name = "inpaint"
    summary = "random patches masked; a decoder predicts their pixels from the backbone's features"

    def __init__(self, model, grid: int = 4, mask_ratio: float = 0.25, size: int = 32):
        super().__init__("simclr", 1.0)
        if not 0 < mask_ratio < 1 or grid < 2:
            raise EmbtuneError("inpaint: mask_ratio must be in (0, 1) and grid >= 2")
        self.grid, self.mask_ratio, self.size = grid, mask_ratio, size
        self.decoder = PixelDecoder(model.dim, size)

    def masks(self, n: int, generator: torch.Generator, device) -> torch.Tensor:
        """(n, 1, grid, grid) floats, 1 = masked; every image gets the same number of masked cells (at least one)."""
        cells = self.grid * self.grid
        count = max(1, round(cells * self.mask_ratio))
        order = torch.rand(n, cells, generator=generator, device=device).argsort(dim=1)
        mask = torch.zeros(n, cells, device=device)
        mask.scatter_(1, order[:, :count], 1.0)
        return mask.view(n, 1, self.grid, self.grid)

    def forward(self, model, batch):
        paths, seed = batch
        clean = model.images(paths)
        cells = self.masks(len(clean), torch.Generator(device=clean.device).manual_seed(seed), clean.device)
        full = F.interpolate(cells, size=clean.shape[-2:], mode="nearest")
        masked = clean * (1 - full) + 0.5 * full
        reconstruction = self.decoder(model(masked))
        goal = F.interpolate(self.normalized(model, clean), size=(self.size, self.size), mode="area")
        small = F.interpolate(cells, size=(self.size, self.size), mode="nearest")
        return (((reconstruction - goal) ** 2) * small).sum() / (small.sum() * 3)
