"""The order the trainer visits items in: a seeded permutation per epoch, and, where the objective allows it, batches of
texts of similar length (so the transformer computes little padding) that are still shuffled, or, where the objective
asks for it, batches of a few labels with several texts each (supervised contrastive learning needs positives in the
batch).

Length grouping is the sampler Hugging Face's ``group_by_length`` uses: cut the epoch's permutation into groups of
``GROUP_BATCHES`` batches, sort each group by token count, cut it into batches and shuffle the batches. Every batch
still draws from a random slice of the corpus, only its members are alike in length. The order is a function of
(seed, epoch) alone, so a resumed run finds its place again.
"""

from __future__ import annotations

import numpy as np

GROUP_BATCHES = 50  # batches per length-sorted group: wide enough to find equal lengths, narrow enough to stay random


def item_lengths(model, items: list) -> np.ndarray:
    """The token count of each item's longest text (its strings: a text, or the texts of a pair), by the model's own
    tokenizer; characters where the model has none that answers."""
    texts = [[x for x in (item if isinstance(item, tuple) else (item,)) if isinstance(x, str)] for item in items]
    flat = [t for row in texts for t in row]
    try:
        counts = model.tokenizer(flat, add_special_tokens=True, truncation=True,
                                 max_length=getattr(model, "max_seq_length", None), return_length=True)["length"]
    except Exception:  # noqa: BLE001 - a model without a Hugging Face tokenizer (the USE port): characters will do
        counts = [len(t) for t in flat]
    out = np.zeros(len(items), dtype=np.int64)
    at = 0
    for i, row in enumerate(texts):
        out[i] = max(counts[at : at + len(row)], default=0)
        at += len(row)
    return out


def epoch_order(n: int, batch_size: int, seed: int, epoch: int, lengths: np.ndarray | None = None,
                runs: tuple | None = None) -> np.ndarray:
    """The item indices of one epoch. ``runs`` (an objective's ``label_runs``: labels, items per label): label-aware
    batches (:func:`label_order`). Else without ``lengths``: the permutation of (seed, epoch). With them: that
    permutation grouped by length as the module says; the one short batch, if any, stays last, so every batch before it
    is full and the trainer's ``batch_size`` slices fall on batch boundaries."""
    if runs is not None:
        return label_order(runs[0], seed, epoch, runs[1])
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    if lengths is None or n <= batch_size:
        return order
    lengths = np.asarray(lengths)
    size = batch_size * GROUP_BATCHES
    batches = []
    for start in range(0, n, size):
        group = order[start : start + size]
        group = group[np.argsort(-lengths[group], kind="stable")]
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    last = batches.pop() if len(batches[-1]) < batch_size else None
    batches = [batches[i] for i in rng.permutation(len(batches))] + ([last] if last is not None else [])
    return np.concatenate(batches)


def label_order(labels, seed: int, epoch: int, per_label: int) -> np.ndarray:
    """The item indices of one epoch in label-aware batches (P x K sampling): each label's items, in the epoch's
    permutation, are cut into runs of ``per_label``; the runs are shuffled and laid end to end, so any batch the trainer
    cuts from it (``batch_size`` items) holds about ``batch_size / per_label`` labels with ``per_label`` items each, and every item finds
    same-label texts in its own batch. Every item still comes once per epoch; the order is a function of (seed, epoch)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(labels))
    by_label = order[np.argsort(labels[order], kind="stable")]  # each label's items together, in permutation order
    starts = np.flatnonzero(np.r_[True, labels[by_label][1:] != labels[by_label][:-1]])
    runs = []
    for members in np.split(by_label, starts[1:]):
        runs += [members[i : i + per_label] for i in range(0, len(members), per_label)]
    return np.concatenate([runs[i] for i in rng.permutation(len(runs))]) if runs else order
