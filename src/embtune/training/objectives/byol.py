"""byol: bootstrap your own latent (Grill et al. 2020). The online network (model + projector + predictor) predicts
the target network's projection of the other view; the target is an EMA copy, so no negatives are needed. The
asymmetric BYOL augmentations are the default. Target network, projector and predictor are dropped at export."""

from __future__ import annotations

import copy

import torch

from embtune.errors import EmbtuneError
from embtune.nn.losses import byol_loss
from embtune.training.objectives.image_heads import ImageObjective, ema_update, mlp_head


class BYOLObjective(ImageObjective):
    name = "byol"
    summary = "BYOL: online predictor regresses an EMA target's projection of the other view"

    def __init__(self, model, momentum: float = 0.99, projection_dim: int = 256, hidden: int = 1024,
                 augmentation: str = "byol", strength: float = 1.0):
        super().__init__(augmentation, strength)
        if not 0 <= momentum < 1:
            raise EmbtuneError("byol: momentum must be in [0, 1)")
        self.momentum = momentum
        self.projector = mlp_head(model.dim, hidden, projection_dim)
        self.predictor = mlp_head(projection_dim, hidden, projection_dim)
        self.target_encoder = copy.deepcopy(model)
        self.target_encoder._pixels = {}
        self.target_projector = copy.deepcopy(self.projector)
        for p in list(self.target_encoder.parameters()) + list(self.target_projector.parameters()):
            p.requires_grad_(False)

    def forward(self, model, batch):
        _, first, second = self.two_views(model, batch)
        h1, h2 = model(first), model(second)
        self.original_embeddings = h1
        p1, p2 = self.predictor(self.projector(h1)), self.predictor(self.projector(h2))
        with torch.no_grad():
            ema_update(self.target_encoder, model, self.momentum)
            ema_update(self.target_projector, self.projector, self.momentum)
            z1 = self.target_projector(self.target_encoder(first))
            z2 = self.target_projector(self.target_encoder(second))
        return (byol_loss(p1, z2) + byol_loss(p2, z1)) / 2
