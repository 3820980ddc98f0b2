"""Reproducible torch randomness without touching the caller's global RNG state."""

from __future__ import annotations

import contextlib

import torch
from sklearn.utils import check_random_state


def torch_generator(random_state) -> torch.Generator:
    """A CPU generator seeded from ``random_state`` (None → a fresh random seed, like scikit-learn)."""
    generator = torch.Generator()
    generator.manual_seed(int(check_random_state(random_state).randint(0, 2**31 - 1)))
    return generator


@contextlib.contextmanager
def seeded_init(generator: torch.Generator):
    """Initialise modules from ``generator`` without touching the caller's global torch RNG state.

    >>> with seeded_init(torch_generator(0)):
    ...     layer = torch.nn.Linear(4, 2)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device="cpu")))
        yield
