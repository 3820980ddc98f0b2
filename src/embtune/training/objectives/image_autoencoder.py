"""autoencoder (images): the pretrained backbone as the encoder of an autoencoder. Its features pass a dense
bottleneck and a decoder reconstructs either the image (``target="pixels"``, at ``size`` x ``size``) or the frozen base
model's features of it (``target="features"``). With ``denoise`` the backbone sees a corrupted image (Gaussian noise
and dropped pixels) and the target is the clean one. Bottleneck and decoder are dropped at export."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from embtune.errors import EmbtuneError
from embtune.training.objectives.image_heads import ImageObjective, PixelDecoder


class ImageAutoencoderObjective(ImageObjective):
    name = "autoencoder"
    summary = "backbone -> dense bottleneck -> decoder reconstructs the pixels (or base features); optional denoising"

    def __init__(self, model, bottleneck: int = 256, target: str = "pixels", denoise: bool = False,
                 noise: float = 0.1, drop: float = 0.1, size: int = 32):
        super().__init__("simclr", 1.0)
        if target not in ("pixels", "features"):
            raise EmbtuneError(f"--reconstruct {target}: use pixels or features")
        self.target, self.denoise, self.noise, self.drop, self.size = target, denoise, noise, drop, size
        self.bottleneck = nn.Sequential(nn.Linear(model.dim, bottleneck), nn.ReLU(inplace=True))
        if target == "pixels":
            self.decoder = PixelDecoder(bottleneck, size)
        else:
            self.decoder = nn.Linear(bottleneck, model.dim)
            self.base = copy.deepcopy(model).eval()
            self.base._pixels = {}
            for p in self.base.parameters():
                p.requires_grad_(False)

    def corrupt(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=generator, device=images.device) * self.noise
        keep = torch.rand(images.shape[0], 1, *images.shape[2:], generator=generator, device=images.device) >= self.drop
        return ((images + noise).clamp(0, 1) * keep)

    def forward(self, model, batch):
        paths, seed = batch
        clean = model.images(paths)
        seen = clean
        if self.denoise:
            seen = self.corrupt(clean, torch.Generator(device=clean.device).manual_seed(seed))
        features = model(seen)
        self.original_embeddings = features
        reconstruction = self.decoder(self.bottleneck(features))
        if self.target == "pixels":
            goal = F.interpolate(self.normalized(model, clean), size=(self.size, self.size), mode="area")
        else:
            with torch.no_grad():
                self.base.eval()
                goal = self.base(clean)
        return F.mse_loss(reconstruction, goal)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.target == "features":
            self.base.eval()
        return self
