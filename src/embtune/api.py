"""The public functions: they wire data, encoders and evaluation together. The CLI is a thin shell over these."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embtune.data.augment import dropout_views
from embtune.data.corpus import Corpus, read_corpus
from embtune.data.pairs import read_pairs
from embtune.data.readers import FORMATS
from embtune.data.vectors import NpyStreamWriter
from embtune.encoders import DEFAULT_MODEL, Encoder, VectorCache, load_encoder
from embtune.encoders.encode import EncodeStats, encode_file, encode_items, estimate_rows
from embtune.errors import EmbtuneError, InputError
from embtune.evaluate.metrics import Metrics, PairVectors, evaluate_vectors
from embtune.progress import task_progress

log = logging.getLogger(__name__)

ALIGNMENT_SAMPLE = 512  # texts re-encoded with word dropout to measure alignment when there is no pair file


def _open_cache(cache: bool | VectorCache) -> VectorCache | None:
    if isinstance(cache, VectorCache):
        return cache
    return VectorCache() if cache else None


@dataclass
class EncodeResult:
    """Vectors (an array, or a memory-mapped .npy when written to ``output``) and what the encode did."""

    vectors: np.ndarray
    stats: EncodeStats
    model: str
    output: Path | None = None


def encode_corpus(
    corpus: str | Path | list[str],
    *,
    model: str | Encoder | None = DEFAULT_MODEL,
    output: str | Path | None = None,
    text_field: str = "text",
    batch_size: int = 64,
    normalize: bool = True,
    device: str = "auto",
    cache: bool | VectorCache = True,
    show_progress: bool | None = None,
) -> EncodeResult:
    """Encode a corpus file (streamed in chunks) or a list of texts, through the vector cache.

    With ``output`` the vectors go to a .npy file (written atomically) and come back memory-mapped.

    >>> result = encode_corpus("corpus.jsonl", output="vectors.npy")
    >>> result.vectors.shape, result.stats.from_cache
    """
    if batch_size < 1:
        raise EmbtuneError(f"--batch-size must be at least 1 (got {batch_size})")
    _refuse_bare_text(corpus)
    vector_cache = _open_cache(cache)
    encoder = load_encoder(model, device=device, cache=vector_cache)
    if isinstance(corpus, (str, Path)):
        corpus_path = Path(corpus)
        with task_progress(f"encoding {corpus_path.name}", estimate_rows(corpus_path), show_progress) as advance:
            if output is not None:
                stats = encode_file(
                    encoder,
                    corpus_path,
                    output,
                    text_field=text_field,
                    cache=vector_cache,
                    batch_size=batch_size,
                    normalize=normalize,
                    on_progress=advance,
                )
                return EncodeResult(np.load(output, mmap_mode="r"), stats, encoder.name, Path(output))
            texts = read_corpus(corpus_path, text_field=text_field, label_field=None).texts
            vectors, stats = encode_items(
                encoder, texts, cache=vector_cache, batch_size=batch_size, normalize=normalize, on_progress=advance
            )
    else:
        texts = _check_texts(corpus)
        with task_progress("encoding", len(texts), show_progress) as advance:
            vectors, stats = encode_items(
                encoder, texts, cache=vector_cache, batch_size=batch_size, normalize=normalize, on_progress=advance
            )
    if output is not None:
        _save_npy(output, vectors)
        return EncodeResult(np.load(output, mmap_mode="r"), stats, encoder.name, Path(output))
    return EncodeResult(vectors, stats, encoder.name)


def _save_npy(path: str | Path, vectors: np.ndarray) -> None:
    with NpyStreamWriter(path, dim=vectors.shape[1]) as out:
        out.write(vectors)


def _refuse_bare_text(corpus) -> None:
    """A str is a path; one that names no file and has no corpus suffix is most likely a text passed by mistake."""
    if isinstance(corpus, str) and not Path(corpus).exists() and Path(corpus).suffix.lower() not in FORMATS:
        shown = corpus if len(corpus) <= 40 else corpus[:37] + "..."
        raise EmbtuneError(
            f"got the string {shown!r}, which is not a corpus file; to embed texts pass a list, e.g. encode([text])"
        )


def _check_texts(texts) -> list[str]:
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise EmbtuneError(f"text {bad} is a {type(texts[bad]).__name__}, expected a string")
    return texts


def encode(corpus: str | Path | list[str], *, model: str | Encoder | None = DEFAULT_MODEL, **options) -> np.ndarray:
    """Vectors for a list of texts or a corpus file: float32, one row per text, L2-normalised by default.

    Options are those of :func:`encode_corpus` (``output``, ``text_field``, ``batch_size``, ``normalize``,
    ``device``, ``cache``, ``show_progress``).

    >>> import embtune
    >>> embtune.encode(["How do I top up my card?", "Where is my card?"]).shape
    (2, 384)
    """
    return encode_corpus(corpus, model=model, **options).vectors


@dataclass
class Evaluation:
    """The metrics of one model on one corpus, with where they came from."""

    metrics: Metrics
    model: str
    corpus: str
    n_texts: int
    n_labels: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "corpus": self.corpus,
            "n_texts": self.n_texts,
            "n_labels": self.n_labels,
            "seconds": round(self.seconds, 3),
            **self.metrics.to_dict(),
            "notes": self.notes,
        }


def _load_corpus(corpus, text_field: str, label_field: str | None, use_labels: bool) -> Corpus:
    if isinstance(corpus, Corpus):
        return corpus
    _refuse_bare_text(corpus)
    if not isinstance(corpus, (str, Path)):
        return Corpus(texts=_check_texts(corpus))
    if not use_labels:
        return read_corpus(corpus, text_field=text_field, label_field=None)
    if label_field is None:
        return read_corpus(corpus, text_field=text_field, label_field="label", require_labels=False)
    return read_corpus(corpus, text_field=text_field, label_field=label_field, require_labels=True)


def _load_vectors(vectors, n_texts: int, source: str) -> np.ndarray:
    if isinstance(vectors, (str, Path)):
        path = Path(vectors)
        if not path.is_file():
            raise InputError(path, "no such file")
        try:
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(path, f"not a readable .npy file ({e})") from None
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise EmbtuneError(f"vectors must be 2-D (texts x dim), got shape {vectors.shape}")
    if len(vectors) != n_texts:
        raise EmbtuneError(
            f"{len(vectors)} vectors for {n_texts} texts in {source}; encode the same corpus (same --text-field) to get them"
        )
    if not np.isfinite(vectors).all():
        raise EmbtuneError("vectors contain NaN or infinite values")
    return vectors


def evaluate(
    corpus: str | Path | list[str] | Corpus,
    *,
    model: str | Encoder | None = DEFAULT_MODEL,
    vectors: str | Path | np.ndarray | None = None,
    text_field: str = "text",
    label_field: str | None = None,
    use_labels: bool = True,
    test: str | Path | None = None,
    pairs: str | Path | None = None,
    k: int | None = None,
    seeds: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    cache: bool | VectorCache = True,
    show_progress: bool | None = None,
) -> Evaluation:
    """Evaluate a model (or precomputed ``vectors``) on a corpus: clusters, space shape, and label/pair metrics.

    Labels come from ``label_field`` (default: the field ``label`` when every row has one). Label metrics are scored on
    ``test`` when given, else on a stratified 20 % held out from the probes' fit. ``pairs`` is a file of
    ``text1``/``text2``/``score`` (STS Spearman) or ``label`` (ROC AUC).

    >>> result = embtune.evaluate("banking.jsonl", model="all-MiniLM-L6-v2", test="banking-test.jsonl")
    >>> result.metrics["v_measure"]
    """
    start = time.perf_counter()
    if seeds < 1:
        raise EmbtuneError(f"--seeds must be at least 1 (got {seeds})")
    if k is not None and k < 2:
        raise EmbtuneError(f"--k must be at least 2 (got {k})")
    data = _load_corpus(corpus, text_field, label_field, use_labels)
    vector_cache = _open_cache(cache)
    notes: list[str] = []
    if data.labels is not None:
        notes.append(f"labels from field {label_field or 'label'!r}: {data.n_labels} distinct")
    test_data = None
    if test is not None:
        test_data = read_corpus(
            test, text_field=text_field, label_field=(label_field or "label") if data.labels is not None else None,
            require_labels=data.labels is not None,
        )
    if vectors is not None and (test is not None or pairs is not None):
        raise EmbtuneError("--vectors cannot be combined with --test or --pairs (they need a model); give --model instead")

    def encode_texts(texts: list[str], what: str) -> np.ndarray:
        with task_progress(f"encoding {what}", len(texts), show_progress) as advance:
            out, _ = encode_items(encoder, texts, cache=vector_cache, batch_size=batch_size, on_progress=advance)
        return out

    if vectors is not None:
        source = data.path.name if data.path else "the corpus"
        corpus_vectors = _load_vectors(vectors, len(data), source)
        model_name = Path(vectors).name if isinstance(vectors, (str, Path)) else "given vectors"
        encoder = None
    else:
        encoder = load_encoder(model, device=device, cache=vector_cache)
        model_name = encoder.name
        corpus_vectors = encode_texts(data.texts, data.path.name if data.path else "texts")

    test_vectors = encode_texts(test_data.texts, Path(test).name) if test_data is not None else None
    pair_vectors = None
    if pairs is not None:
        pair_data = read_pairs(pairs)
        both = encode_texts(pair_data.text1 + pair_data.text2, Path(pairs).name)
        pair_vectors = PairVectors(
            a=both[: len(pair_data)],
            b=both[len(pair_data) :],
            scores=pair_data.scores,
            labels=pair_data.labels,
            positive=pair_data.positive_mask(),
        )
    views = None
    if pair_vectors is None and encoder is not None:
        base_texts, base_vectors = (test_data.texts, test_vectors) if test_data is not None else (data.texts, corpus_vectors)
        pick = np.random.default_rng(seed).permutation(len(base_texts))[:ALIGNMENT_SAMPLE]
        augmented = dropout_views([base_texts[i] for i in pick], seed=seed)
        views = (base_vectors[pick], encode_texts(augmented, "word-dropout views"))

    metrics = evaluate_vectors(
        corpus_vectors,
        labels=data.labels,
        test_vectors=test_vectors,
        test_labels=test_data.labels if test_data is not None else None,
        pairs=pair_vectors,
        views=views,
        k=k,
        seeds=seeds,
        seed=seed,
    )
    return Evaluation(
        metrics=metrics,
        model=model_name,
        corpus=str(data.path) if data.path else "texts",
        n_texts=len(data),
        n_labels=data.n_labels,
        seconds=time.perf_counter() - start,
        notes=notes,
    )
