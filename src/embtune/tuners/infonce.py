"""InfoNCETuner: SimCLR on vectors, without labels. The projection head is used in training and dropped after.

Positives are either two corrupted views of the same vector (``positives="augment"``, plain SimCLR) or a vector and
one of its nearest neighbours in the corpus (``positives="neighbors"``, the NNCLR / SCAN idea). On an already strong
encoder the first mostly spreads the space (instance discrimination: every vector pushed from every other); the second
pulls each vector's neighbourhood together, and in-batch neighbours are not used as negatives.

The encoder is residual, ``f(x) = x + g(x)`` with the last layer of ``g`` starting at zero, so training starts from
the identity: the tuned space moves away from the original only as far as the objective pulls it.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import validate_data

from embtune.data.vectors import nearest_neighbors
from embtune.nn.losses import info_nce_loss
from embtune.tuners.base import TunerBase, as_float_tensor
from embtune.tuners.noise import check_kinds, corrupt


MAX_VALIDATION = 2048  # held-out vectors scored in one InfoNCE batch


class ResidualEncoder(torch.nn.Module):
    def __init__(self, n_features: int, width: int):
        super().__init__()
        self.inner = torch.nn.Sequential(
            torch.nn.Linear(n_features, width), torch.nn.GELU(), torch.nn.Linear(width, n_features)
        )
        torch.nn.init.zeros_(self.inner[2].weight)
        torch.nn.init.zeros_(self.inner[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class ContrastiveModel(torch.nn.Module):
    def __init__(self, n_features: int, width: int, projection_dim: int):
        super().__init__()
        self.encoder = ResidualEncoder(n_features, width)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(n_features, width), torch.nn.ReLU(), torch.nn.Linear(width, projection_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class InfoNCETuner(TunerBase):
    """Label-free contrastive tuning of frozen vectors (normalised InfoNCE, temperature 0.1 by default).

    Parameters:
        positives: "augment" (two corrupted views of each vector) or "neighbors" (a vector and one of its
            ``n_neighbors`` nearest neighbours, both lightly corrupted; neighbours are masked as negatives).
        n_neighbors: k for "neighbors".
        noise, noise_level: corruptions making the views ("dropout", "gaussian", "mask").
        temperature: InfoNCE temperature.
        width, projection_dim: encoder/head width and the head's output size (the head is dropped after training).
        n_epochs, learning_rate, batch_size: training (bigger batches give more negatives).
        validation_fraction, n_iter_no_change, tol: stop when the held-out loss stops improving; keep the best epoch.
        random_state, device.

    >>> tuned = InfoNCETuner(positives="neighbors", random_state=0).fit(X).transform(X)   # same width as X
    """

    def __init__(
        self,
        positives: str = "augment",
        n_neighbors: int = 5,
        noise=("dropout", "gaussian"),
        noise_level: float = 0.1,
        temperature: float = 0.1,
        width: int = 512,
        projection_dim: int = 128,
        n_epochs: int = 50,
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 5,
        tol: float = 1e-4,
        random_state=None,
        device: str = "auto",
    ):
        self.positives = positives
        self.n_neighbors = n_neighbors
        self.noise = noise
        self.noise_level = noise_level
        self.temperature = temperature
        self.width = width
        self.projection_dim = projection_dim
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.device = device

    def _setup(self, n_features: int) -> None:
        self.n_features_in_ = n_features
        self._build(lambda: ContrastiveModel(n_features, self.width, self.projection_dim))

    def fit(self, X, y=None):
        """Fit on vectors ``X`` (labels, if given, are ignored)."""
        if self.positives not in ("augment", "neighbors"):
            raise ValueError(f"positives={self.positives!r}; use 'augment' or 'neighbors'")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        kinds = check_kinds(self.noise, "noise")
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        self._setup(X.shape[1])
        generator = self._generator
        data = as_float_tensor(X, self.device_)
        neighbors = None
        if self.positives == "neighbors":
            neighbors = torch.as_tensor(nearest_neighbors(X, self.n_neighbors), device=self.device_)

        def loss(index):
            # validation draws the same views every epoch, so its loss moves only when the model does
            rng = generator if self.model_.training else torch.Generator().manual_seed(0)
            anchor = data[index]
            if neighbors is None:
                other, mask = anchor, None
            else:
                pick = torch.randint(0, neighbors.shape[1], (len(index),), generator=rng).to(self.device_)
                other = data[neighbors[index, pick]]
                # b[j] is a false negative for a[i] when item j is one of i's neighbours
                mask = (neighbors[index].unsqueeze(2) == index.view(1, 1, -1)).any(dim=1)
            view1 = corrupt(anchor, kinds, self.noise_level, rng)
            view2 = corrupt(other, kinds, self.noise_level, rng)
            return info_nce_loss(self.model_(view1), self.model_(view2), temperature=self.temperature, mask=mask)

        index = torch.arange(len(X), device=self.device_)
        validation = None
        if self.n_iter_no_change is not None and len(X) >= 20:
            n_val = min(MAX_VALIDATION, max(2, int(round(self.validation_fraction * len(X)))))
            train_idx, val_idx = self._validation_split(len(X), n_val)
            index, validation = index[train_idx], (index[val_idx],)
        self._run_epochs(loss, (index,), generator, validation)
        return self

    def transform(self, X, y=None):
        """Tuned vectors (same width as the input); the projection head is not applied."""
        return self._encoder_output(X)
