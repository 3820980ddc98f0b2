"""Text augmentations that keep meaning mostly intact: word deletion, masking, swaps and span crops.

Every function takes a ``numpy.random.Generator`` so views are reproducible from a seed.
"""

from __future__ import annotations

import numpy as np


def delete_words(text: str, rng: np.random.Generator, p: float = 0.1) -> str:
    """Drop each word with probability ``p`` (at least one word is kept)."""
    words = text.split()
    if len(words) < 2:
        return text
    keep = rng.random(len(words)) >= p
    if not keep.any():
        keep[rng.integers(len(words))] = True
    return " ".join(w for w, k in zip(words, keep) if k)


def mask_words(text: str, rng: np.random.Generator, p: float = 0.15, mask: str = "[MASK]") -> str:
    """Replace each word with ``mask`` with probability ``p``."""
    words = text.split()
    return " ".join(mask if rng.random() < p else w for w in words)


def swap_words(text: str, rng: np.random.Generator, n_swaps: int = 1) -> str:
    """Swap ``n_swaps`` random pairs of neighbouring words."""
    words = text.split()
    for _ in range(n_swaps if len(words) > 1 else 0):
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def crop_span(text: str, rng: np.random.Generator, min_fraction: float = 0.7) -> str:
    """Keep one contiguous span of at least ``min_fraction`` of the words."""
    words = text.split()
    if len(words) < 3:
        return text
    length = int(rng.integers(max(1, int(np.ceil(min_fraction * len(words)))), len(words) + 1))
    start = int(rng.integers(0, len(words) - length + 1))
    return " ".join(words[start : start + length])


def dropout_views(texts: list[str], *, p: float = 0.1, seed: int = 0) -> list[str]:
    """A word-deletion copy of each text, reproducible from ``seed`` (used to measure alignment without pairs)."""
    rng = np.random.default_rng(seed)
    return [delete_words(t, rng, p) for t in texts]


TEXT_AUGMENTATIONS = ("delete", "mask", "swap", "crop")


def augment_text(text: str, rng: np.random.Generator, kinds=TEXT_AUGMENTATIONS, strength: float = 0.15) -> str:
    """One randomly chosen augmentation from ``kinds`` at ``strength`` (word fraction), e.g. for SimCLR views.

    >>> augment_text("my card has not arrived yet", np.random.default_rng(0))
    """
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "delete":
        return delete_words(text, rng, strength)
    if kind == "mask":
        return mask_words(text, rng, strength)
    if kind == "swap":
        return swap_words(text, rng, max(1, round(strength * len(text.split()))))
    if kind == "crop":
        return crop_span(text, rng, 1 - strength)
    raise ValueError(f"unknown augmentation {kind!r}; use any of {TEXT_AUGMENTATIONS}")
