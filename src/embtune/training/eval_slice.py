"""The held-out slice a training run is watched on: drawn once (seeded), never trained on."""

from __future__ import annotations

import numpy as np

from embtune.data.augment import dropout_views
from embtune.data.pairs import read_pairs
from embtune.errors import EmbtuneError, InputError
from embtune.training.items import TrainingData
from embtune.training.trainer import EvalSet

EVAL_SIZE = 1000  # held-out texts watched during training (at most 10 % of the corpus)
MIN_EVAL = 20  # a smaller slice says nothing; the run is then not watched
STS_MONITOR_PAIRS = 500


def _slice_size(n: int) -> int:
    return min(EVAL_SIZE, n // 10)


def hold_out_slice(data: TrainingData, *, seed: int, sts=None, views: bool = True,
                   early_stopping: str | None = None) -> tuple[list, EvalSet | None]:
    """(items left to train on, the slice to watch or None when the corpus is too small).

    The slice's texts are dropped from the items (for pair data, every pair that holds one of them). ``sts`` is a pair
    file with scores to watch general ability on; ``views`` adds word-dropout copies of the slice (alignment).
    """
    rng = np.random.default_rng(seed)
    n_eval = _slice_size(len(data.texts))
    if n_eval < MIN_EVAL:
        if early_stopping:
            raise EmbtuneError(f"--early-stopping needs a held-out slice: the corpus is too small ({len(data.texts)} texts)")
        return data.items, None
    pick = np.sort(rng.permutation(len(data.texts))[:n_eval])
    texts = [data.texts[i] for i in pick]
    held = set(texts)
    items = [it for it in data.items if (it[0] if isinstance(it, tuple) else it) not in held
             and not (isinstance(it, tuple) and len(it) > 1 and isinstance(it[1], str) and it[1] in held)]
    labels = [data.labels[i] for i in pick] if data.labels is not None else None
    sts_pairs = None
    if sts is not None:
        sts_data = read_pairs(sts)
        if sts_data.scores is None:
            raise InputError(sts_data.path, "--sts needs a pair file with a 'score' field (e.g. STS-B)")
        keep = rng.permutation(len(sts_data))[:STS_MONITOR_PAIRS]
        sts_pairs = ([sts_data.text1[i] for i in keep], [sts_data.text2[i] for i in keep], sts_data.scores[keep])
    return items, EvalSet(texts=texts, labels=labels, sts=sts_pairs,
                          view_texts=dropout_views(texts, seed=seed) if views else None)


def hold_out_rows(texts: list[str], labels, *, seed: int) -> tuple[list[str], EvalSet | None]:
    """The same slice by row (the TensorFlow loop's): (texts left to train on, the slice or None); its k is the
    number of labels, else one cluster per ten texts (2 to 50)."""
    n_eval = _slice_size(len(texts))
    if n_eval < MIN_EVAL:
        return list(texts), None
    pick = np.sort(np.random.default_rng(seed).permutation(len(texts))[:n_eval])
    held = set(pick.tolist())
    eval_set = EvalSet(texts=[texts[i] for i in pick], labels=[labels[i] for i in pick] if labels is not None else None)
    eval_set.k = len(set(eval_set.labels)) if eval_set.labels is not None else max(2, min(50, n_eval // 10))
    return [t for i, t in enumerate(texts) if i not in held], eval_set
