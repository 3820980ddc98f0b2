"""What an objective trains on, read once from the corpus: its items, plus the texts (and labels) to watch it on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embtune.data.load import load_corpus
from embtune.data.pairs import read_pairs
from embtune.errors import EmbtuneError, InputError


@dataclass
class TrainingData:
    """``items`` in the objective's own shape (texts, (text, paraphrase), (text, label), pairs, images); ``texts`` and
    ``labels`` are what the held-out slice is drawn from; ``source`` names the corpus for the summary."""

    items: list
    texts: list
    labels: list | None
    source: str


def training_data(objective_cls, corpus, text_field: str = "text", label_field: str | None = None,
                  use_labels: bool = True, paraphrase_field: str | None = None) -> TrainingData:
    """Read ``corpus`` for ``objective_cls.data``: "images", "texts", "labelled", "pairs" or "scored_pairs"."""
    kind = objective_cls.data
    if kind == "images":
        data = load_corpus(corpus, text_field, label_field, use_labels)
        if data.unit != "images":
            raise EmbtuneError(
                f"--objective {objective_cls.name} trains image models, and {data.describe()}; pass a folder of images "
                "or an index file (.jsonl/.csv) with a 'path' field"
            )
        return TrainingData(list(data.texts), data.texts, data.labels, str(data.path) if data.path else "images")
    if kind != "images" and isinstance(corpus, (str, Path)) and Path(corpus).is_dir():
        raise EmbtuneError(f"{corpus} is a folder of images: use an image objective (--objective simclr, moco, byol, "
                           "autoencoder or inpaint)")
    if kind == "texts":
        if paraphrase_field:
            from embtune.data.corpus import read_paraphrase_corpus

            data, paraphrases = read_paraphrase_corpus(corpus, text_field=text_field, paraphrase_field=paraphrase_field)
            items = [(t, p) if p else t for t, p in zip(data.texts, paraphrases)]
        else:
            data = load_corpus(corpus, text_field, label_field, use_labels)
            items = list(data.texts)
        return TrainingData(items, data.texts, data.labels, str(data.path) if data.path else "texts")
    if kind == "labelled":
        data = load_corpus(corpus, text_field, label_field or "label", True)
        if data.labels is None:
            raise EmbtuneError(f"--objective {objective_cls.name} trains on labels: pass --labels FIELD")
        return TrainingData(list(zip(data.texts, data.labels)), data.texts, data.labels,
                            str(data.path) if data.path else "texts")
    return _pair_data(objective_cls, read_pairs(corpus))


def _pair_data(objective_cls, pairs) -> TrainingData:
    if objective_cls.data == "pairs":
        negatives = pairs.negatives or [""] * len(pairs)
        items = [(a, b, c) if c else (a, b) for a, b, c in zip(pairs.text1, pairs.text2, negatives)]
    else:
        if pairs.scores is None and pairs.labels is None:
            raise InputError(pairs.path, f"--objective {objective_cls.name} needs a 'score' (or 0/1 'label') per pair")
        target = pairs.scores if pairs.scores is not None else pairs.labels.astype(float)
        if target.max() > 1:  # e.g. STS-B's 0-5: cosine targets live in [0, 1]
            target = target / target.max()
        items = list(zip(pairs.text1, pairs.text2, target.tolist()))
    return TrainingData(items, list(dict.fromkeys(pairs.text1 + pairs.text2)), None, str(pairs.path))
