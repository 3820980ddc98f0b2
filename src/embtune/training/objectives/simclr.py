"""simclr: SimCLR for images (Chen et al. 2020). Two augmented views of each image, a projection head, normalised
InfoNCE (temperature 0.1), symmetric, in-batch negatives. The head is dropped at export."""

from __future__ import annotations

from embtune.nn.losses import info_nce_loss
from embtune.training.objectives.image_heads import ImageObjective, mlp_head


class SimCLRObjective(ImageObjective):
    name = "simclr"
    summary = "SimCLR: two augmented views per image, projection head, normalised InfoNCE"

    def __init__(self, model, temperature: float = 0.1, projection_dim: int = 128, hidden: int = 512,
                 augmentation: str = "simclr", strength: float = 1.0):
        super().__init__(augmentation, strength)
        self.temperature = temperature
        self.projector = mlp_head(model.dim, hidden, projection_dim)

    def forward(self, model, batch):
        _, first, second = self.two_views(model, batch)
        h1, h2 = model(first), model(second)
        self.original_embeddings = h1
        return info_nce_loss(self.projector(h1), self.projector(h2), temperature=self.temperature)
