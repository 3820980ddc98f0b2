"""AutoencoderTuner: a label-free denoising bottleneck; the code layer is the new embedding."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.validation import validate_data

from embtune.tuners.base import TunerBase, as_float_tensor
from embtune.tuners.noise import check_kinds, corrupt


class Autoencoder(torch.nn.Module):
    def __init__(self, n_features: int, code_dim: int, width: int):
        super().__init__()
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(n_features, width), torch.nn.GELU(), torch.nn.Linear(width, code_dim)
        )
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(code_dim, width), torch.nn.GELU(), torch.nn.Linear(width, n_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AutoencoderTuner(TunerBase):
    """Compress vectors through a ``hidden_dim`` bottleneck trained to rebuild them from a corrupted copy; no labels.

    Parameters:
        hidden_dim: size of the code layer (the new embedding).
        width: size of the layers around the code.
        n_epochs, learning_rate, batch_size: training.
        noise: corruptions of the input ("dropout", "gaussian", "mask", several, or None for a plain autoencoder).
        noise_level: their strength (probability, relative std, or masked fraction).
        loss: "cosine" (rebuild the direction; what similarity search uses) or "mse".
        validation_fraction, n_iter_no_change, tol: stop when the held-out reconstruction stops improving, keep the
            best epoch (``n_iter_no_change=None`` runs every epoch).
        random_state, device.

    >>> codes = AutoencoderTuner(hidden_dim=128, random_state=0).fit_transform(X)
    """

    def __init__(
        self,
        hidden_dim: int = 128,
        width: int = 512,
        n_epochs: int = 100,
        learning_rate: float = 1e-3,
        batch_size: int = 128,
        noise=("dropout",),
        noise_level: float = 0.1,
        loss: str = "cosine",
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 10,
        tol: float = 1e-4,
        random_state=None,
        device: str = "auto",
    ):
        self.hidden_dim = hidden_dim
        self.width = width
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.noise = noise
        self.noise_level = noise_level
        self.loss = loss
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.device = device

    def _setup(self, n_features: int) -> None:
        self.n_features_in_ = n_features
        self._build(lambda: Autoencoder(n_features, self.hidden_dim, self.width))

    def fit(self, X, y=None):
        """Fit on vectors ``X`` (labels, if given, are ignored)."""
        kinds = check_kinds(self.noise, "noise")
        if self.loss not in ("cosine", "mse"):
            raise ValueError(f"loss={self.loss!r}; use 'cosine' or 'mse'")
        X = validate_data(self, X, dtype=np.float32)
        self._setup(X.shape[1])
        generator = self._generator

        def loss(clean):
            noisy = corrupt(clean, kinds, self.noise_level, generator) if self.model_.training else clean
            rebuilt = self.model_(noisy)
            if self.loss == "cosine":
                return (1 - F.cosine_similarity(rebuilt, clean)).mean()
            return F.mse_loss(rebuilt, clean)

        index = np.arange(len(X))
        validation = None
        if self.n_iter_no_change is not None and len(X) >= 20:
            index, held_out = self._validation_split(len(X), self.validation_fraction)
            validation = (as_float_tensor(X[held_out], self.device_),)
        self._run_epochs(loss, (as_float_tensor(X[index], self.device_),), generator, validation)
        return self

    def transform(self, X, y=None):
        """The code layer: (n, hidden_dim) float32."""
        return self._encoder_output(X)
