"""moco: momentum contrast (He et al. 2020, with v3's in-batch keys). A query encoder (the model + a projection
head) is trained to pick its own image's key, encoded by a slowly moving (EMA) copy, out of the batch's other keys
and a queue of keys from earlier batches. The key encoder, the queue and the head are dropped at export."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from embtune.errors import EmbtuneError
from embtune.nn.losses import moco_loss
from embtune.training.objectives.image_heads import ImageObjective, ema_update, mlp_head


class MoCoObjective(ImageObjective):
    name = "moco"
    summary = "MoCo: queries vs momentum-encoder keys and a queue of past keys, InfoNCE"

    def __init__(self, model, temperature: float = 0.2, queue_size: int = 4096, momentum: float = 0.99,
                 projection_dim: int = 128, hidden: int = 512, augmentation: str = "simclr", strength: float = 1.0):
        super().__init__(augmentation, strength)
        if not 0 <= momentum < 1 or queue_size < 0:
            raise EmbtuneError("moco: momentum must be in [0, 1) and queue_size >= 0")
        self.temperature, self.momentum = temperature, momentum
        self.projector = mlp_head(model.dim, hidden, projection_dim)
        self.key_encoder = copy.deepcopy(model)
        self.key_encoder._pixels = {}  # the key encoder sees views built from the query model's decoded images
        self.key_projector = copy.deepcopy(self.projector)
        for p in list(self.key_encoder.parameters()) + list(self.key_projector.parameters()):
            p.requires_grad_(False)
        self.register_buffer("queue", torch.zeros(queue_size, projection_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_next", torch.zeros((), dtype=torch.long))

    def _keys(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key_projector(self.key_encoder(images)), dim=-1)

    def _contrast(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return moco_loss(queries, keys, self.queue[: int(self.queue_filled)], temperature=self.temperature)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        size = len(self.queue)
        if size == 0:
            return
        keys = keys[-size:]
        slots = (int(self.queue_next) + torch.arange(len(keys), device=keys.device)) % size
        self.queue[slots] = keys
        self.queue_next.fill_((int(self.queue_next) + len(keys)) % size)
        self.queue_filled.fill_(min(size, int(self.queue_filled) + len(keys)))

    def forward(self, model, batch):
        _, first, second = self.two_views(model, batch)
        h1, h2 = model(first), model(second)
        self.original_embeddings = h1
        q1, q2 = F.normalize(self.projector(h1), dim=-1), F.normalize(self.projector(h2), dim=-1)
        with torch.no_grad():
            ema_update(self.key_encoder, model, self.momentum)
            ema_update(self.key_projector, self.projector, self.momentum)
            k1, k2 = self._keys(first), self._keys(second)
        loss = (self._contrast(q1, k2) + self._contrast(q2, k1)) / 2
        self._enqueue(torch.cat([k1, k2]))
        return loss
