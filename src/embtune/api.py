"""The public functions: they wire data, encoders and evaluation together. The CLI is a thin shell over these."""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embtune.atomic import atomic_write_text
from embtune.data.augment import dropout_views
from embtune.data.corpus import Corpus, read_corpus
from embtune.data.images import is_image_corpus, read_image_corpus
from embtune.data.pairs import read_pairs
from embtune.data.readers import FORMATS
from embtune.data.vectors import NpyStreamWriter, l2_normalize
from embtune.encoders import DEFAULT_MODEL, Encoder, VectorCache, load_encoder, resolve_model
from embtune.encoders.cache import directory_fingerprint
from embtune.encoders.encode import EncodeStats, encode_file, encode_items, estimate_rows
from embtune.errors import EmbtuneError, InputError
from embtune.evaluation.metrics import Metrics, PairVectors, evaluate_vectors
from embtune.outputs import prepare_output_file, writes_output_folder
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
    model: str | Encoder | None = None,
    tuner: str | Path | Any | None = None,
    output: str | Path | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    batch_size: int = 64,
    chunk_size: int = 8192,
    normalize: bool = True,
    device: str = "auto",
    backend: str = "torch",
    processes: int = 1,
    cache: bool | VectorCache = True,
    show_progress: bool | None = None,
) -> EncodeResult:
    """Encode a corpus file or folder of shards (streamed in chunks) or a list of texts, through the vector cache.

    With ``output`` the vectors go to a .npy file and come back memory-mapped; a text corpus is then streamed with flat
    memory, its row ids (``id_field``'s values, else row numbers) go to ``<output stem>.ids.jsonl``, and a killed run
    started again resumes after the last chunk it wrote. With ``tuner`` (a fitted tuner or the folder one was saved to)
    the model's vectors pass through it; ``model`` then defaults to the base model the tuner was fitted on, else to
    all-MiniLM-L6-v2. ``backend`` "onnx" / "onnx-int8" runs a text model with ONNX Runtime (see
    :mod:`embtune.encoders.onnx`). ``processes`` > 1 runs that many copies of the model in worker processes (the CPU
    cores shared out between them, or one GPU each; see :mod:`embtune.encoders.multiprocess`).

    >>> result = encode_corpus("corpus.jsonl", output="vectors.npy")
    >>> result.vectors.shape, result.stats.from_cache
    """
    if batch_size < 1:
        raise EmbtuneError(f"--batch-size must be at least 1 (got {batch_size})")
    _refuse_bare_text(corpus)
    if output is not None:
        from embtune.data.resumable import ids_path_for

        side = [ids_path_for(output)] if isinstance(corpus, (str, Path)) else []
        output = prepare_output_file(output, inputs=[corpus, tuner, model], side_files=side)
    vector_cache = _open_cache(cache)
    transform = transform_id = None
    if tuner is not None:
        if isinstance(tuner, (str, Path)) and Path(tuner).is_dir():
            transform_id = directory_fingerprint(Path(tuner), vector_cache)
        tuner, model = _tuner_and_base_model(tuner, model, vector_cache, device)
        transform = tuner.transform
    image_data = None
    if isinstance(corpus, (str, Path)) and is_image_corpus(corpus):
        image_data = read_image_corpus(corpus, use_labels=False)
        encoder = _encoder_for(model, image_data, device=device, cache=vector_cache, backend=backend)
    else:
        encoder = load_encoder(model or DEFAULT_MODEL, device=device, cache=vector_cache, backend=backend)
    with ExitStack() as stack:
        if processes > 1:
            from embtune.encoders.multiprocess import ProcessPoolEncoder

            by_name = image_data is None and (model is None or isinstance(model, str))
            spec = (model or DEFAULT_MODEL) if by_name else None
            encoder = ProcessPoolEncoder(encoder, processes=processes, model=spec, device=device, backend=backend)
            stack.callback(encoder.close)
        return _encode(encoder, corpus, image_data, output, text_field=text_field, id_field=id_field,
                       batch_size=batch_size, chunk_size=chunk_size, normalize=normalize, vector_cache=vector_cache,
                       show_progress=show_progress, transform=transform, transform_id=transform_id)


def _encode(encoder, corpus, image_data, output, *, text_field, id_field, batch_size, chunk_size, normalize,
            vector_cache, show_progress, transform, transform_id) -> EncodeResult:
    """encode_corpus once the encoder is chosen: stream a corpus file to ``output``, or encode texts in memory."""
    def finish(vectors: np.ndarray) -> np.ndarray:
        if transform is None:
            return vectors
        vectors = np.asarray(transform(vectors), dtype=np.float32)
        return l2_normalize(vectors) if normalize else vectors

    if image_data is not None:
        texts = image_data.texts
    elif isinstance(corpus, (str, Path)):
        corpus_path = Path(corpus)
        with task_progress(f"encoding {corpus_path.name}", estimate_rows(corpus_path), show_progress) as advance:
            if output is not None:
                stats = encode_file(
                    encoder,
                    corpus_path,
                    output,
                    text_field=text_field,
                    id_field=id_field,
                    cache=vector_cache,
                    batch_size=batch_size,
                    chunk_size=chunk_size,
                    normalize=normalize,
                    on_progress=advance,
                    transform=transform,
                    transform_id=transform_id,
                )
                return EncodeResult(np.load(output, mmap_mode="r"), stats, encoder.name, Path(output))
            texts = read_corpus(corpus_path, text_field=text_field, label_field=None).texts
    else:
        texts = _check_texts(corpus)
    with task_progress("encoding", len(texts), show_progress) as advance:
        vectors, stats = encode_items(
            encoder, texts, cache=vector_cache, batch_size=batch_size, normalize=normalize or transform is not None,
            on_progress=advance,
        )
    vectors = finish(vectors)
    stats.dim = vectors.shape[1]
    if output is not None:
        _save_npy(output, vectors)
        return EncodeResult(np.load(output, mmap_mode="r"), stats, encoder.name, Path(output))
    return EncodeResult(vectors, stats, encoder.name)


def _tuner_and_base_model(tuner, model, cache: VectorCache | None, device: str):
    """Load a tuner from its folder if needed and pick the model whose vectors it expects."""
    if not isinstance(tuner, (str, Path)):
        return tuner, model
    fitted, meta = load_tuner_with_base(tuner)
    if model is None:
        model = meta.get("base_model") or DEFAULT_MODEL
        try:
            resolve_model(model)
        except EmbtuneError:  # a local folder named relative to where the tuner was made: use its absolute path
            model = meta.get("base_model_path") or model
    elif meta.get("base_model_fingerprint"):
        chosen = load_encoder(model, device=device, cache=cache)
        if chosen.fingerprint != meta["base_model_fingerprint"]:
            log.warning(
                "the tuner in %s was fitted on vectors from %s, not %s; its output may be meaningless",
                tuner,
                meta.get("base_model"),
                chosen.name,
            )
    return fitted, model


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


def encode(corpus: str | Path | list[str], *, model: str | Encoder | None = None, **options) -> np.ndarray:
    """Vectors for a list of texts or a corpus file: float32, one row per text, L2-normalised by default.

    Options are those of :func:`encode_corpus` (``tuner``, ``output``, ``text_field``, ``batch_size``,
    ``normalize``, ``device``, ``cache``, ``show_progress``).

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
    unit: str = "texts"  # or "images"

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


EVALUATE_SAMPLE = 20_000  # texts scored by `evaluate` on a bigger corpus: metrics are stable well before that
TUNE_SAMPLE = 100_000  # texts a tuner is fitted and scored on; `encode --tuner` then streams the whole corpus


def _load_corpus(corpus, text_field: str, label_field: str | None, use_labels: bool, *, sample: int | None = None,
                 seed: int = 0) -> Corpus:
    """The corpus in memory; with ``sample``, a fixed-seed sample of that many texts when the corpus is bigger."""
    if isinstance(corpus, Corpus):
        return corpus
    _refuse_bare_text(corpus)
    if not isinstance(corpus, (str, Path)):
        return Corpus(texts=_check_texts(corpus))
    if is_image_corpus(corpus):
        return read_image_corpus(corpus, label_field=label_field or "label", use_labels=use_labels)
    options = {"text_field": text_field, "sample": sample, "seed": seed}
    if not use_labels:
        data = read_corpus(corpus, label_field=None, **options)
    elif label_field is None:
        data = read_corpus(corpus, label_field="label", require_labels=False, **options)
    else:
        data = read_corpus(corpus, label_field=label_field, require_labels=True, **options)
    if data.sampled_from:
        log.info("%s: %d texts; using a fixed-seed sample of %d (seed %d)", Path(corpus).name, data.sampled_from,
                 len(data), seed)
    return data


def _sample_note(data: Corpus, seed: int) -> list[str]:
    if not data.sampled_from:
        return []
    return [f"scored on a fixed-seed sample of {len(data):,} of the corpus's {data.sampled_from:,} texts (seed {seed}); "
            "--sample N changes its size, --sample 0 uses every text"]


def _read_test(test: str | Path, text_field: str, label_field: str | None, labelled: bool) -> Corpus:
    """A --test file of the same kind as the corpus (texts or images), with labels when the corpus has them."""
    if is_image_corpus(test):
        return read_image_corpus(test, label_field=label_field or "label", use_labels=labelled)
    return read_corpus(test, text_field=text_field, label_field=(label_field or "label") if labelled else None,
                       require_labels=labelled)


def _encoder_for(model, data: Corpus, *, device: str, cache: VectorCache | None, backend: str = "torch") -> Encoder:
    """The encoder for ``data``: the default model follows the corpus (all-MiniLM-L6-v2 for texts, EfficientNet-Lite0
    for images); a text model on images, or the reverse, is refused with what to pass instead."""
    from embtune.encoders.image import DEFAULT_IMAGE_MODEL

    images = data.unit == "images"
    if images and (model is None or (isinstance(model, str) and model == DEFAULT_MODEL)):
        model = DEFAULT_IMAGE_MODEL
    encoder = load_encoder(model, device=device, cache=cache, backend=backend)
    wanted = "image" if images else "text"
    if getattr(encoder, "modality", "text") != wanted:
        where = data.path or "the corpus"
        hint = f"--model {DEFAULT_IMAGE_MODEL} (or an image model folder)" if images else f"--model {DEFAULT_MODEL}"
        raise EmbtuneError(f"{where} holds {data.unit} but {encoder.name} is a {encoder.modality} model; pass {hint}")
    return encoder


def _load_vectors(vectors, n_texts: int, source: str) -> np.ndarray:
    from embtune.data.vectors import check_vector_rows

    where = "the vectors"
    if isinstance(vectors, (str, Path)):
        path = Path(vectors)
        where = str(path)
        if not path.is_file():
            raise InputError(path, "no such file")
        try:
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(path, f"not a readable .npy file ({e})") from None
    vectors = np.asarray(vectors)
    if vectors.dtype.kind not in "fiu":
        raise EmbtuneError(f"{where}: holds {vectors.dtype} values, not numbers; pass the .npy written by `embtune encode`")
    if vectors.ndim != 2:
        raise EmbtuneError(f"{where}: vectors must be 2-D (texts x dim), got shape {vectors.shape}")
    if len(vectors) != n_texts:
        raise EmbtuneError(
            f"{len(vectors)} vectors for {n_texts} texts in {source}; encode the same corpus (same --text-field) to get them"
        )
    check_vector_rows(vectors, where)
    return l2_normalize(vectors)


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
    sample: int | None = EVALUATE_SAMPLE,
    batch_size: int = 64,
    device: str = "auto",
    backend: str = "torch",
    cache: bool | VectorCache = True,
    show_progress: bool | None = None,
) -> Evaluation:
    """Evaluate a model (or precomputed ``vectors``) on a corpus: clusters, space shape, and label/pair metrics.

    Labels come from ``label_field`` (default: the field ``label`` when every row has one). Label metrics are scored on
    ``test`` when given, else on a stratified 20 % held out from the probes' fit. ``pairs`` is a file of
    ``text1``/``text2``/``score`` (STS Spearman) or ``label`` (ROC AUC). A corpus of more than ``sample`` texts is
    scored on a fixed-seed sample of that many (read in one streaming pass; the notes say so); 0 or None scores all.

    >>> result = embtune.evaluate("banking.jsonl", model="all-MiniLM-L6-v2", test="banking-test.jsonl")
    >>> result.metrics["v_measure"]
    """
    start = time.perf_counter()
    if seeds < 1:
        raise EmbtuneError(f"--seeds must be at least 1 (got {seeds})")
    if k is not None and k < 2:
        raise EmbtuneError(f"--k must be at least 2 (got {k})")
    if vectors is not None:
        sample = None  # precomputed vectors are one row per text of the whole corpus
    data = _load_corpus(corpus, text_field, label_field, use_labels, sample=sample, seed=seed)
    vector_cache = _open_cache(cache)
    notes: list[str] = _sample_note(data, seed)
    if data.labels is not None:
        notes.append(f"labels from field {label_field or 'label'!r}: {data.n_labels} distinct")
    test_data = None
    if test is not None:
        test_data = _read_test(test, text_field, label_field, data.labels is not None)
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
        encoder = _encoder_for(model, data, device=device, cache=vector_cache, backend=backend)
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
    if pair_vectors is None and encoder is not None and encoder.modality == "text":
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
        unit=data.unit,
    )


# -- tune: a head on frozen vectors ---------------------------------------------------------------------------------

TUNING_FILE = "tuning.json"  # written next to a saved tuner: base model, method, data, before/after metrics


@dataclass
class TuneResult:
    """A fitted tuner with the held-out metrics of the base vectors (``before``) and the tuned ones (``after``)."""

    tuner: Any
    method: str
    model: str
    before: Metrics
    after: Metrics
    n_fit: int
    n_heldout: int
    fit_seconds: float
    labels_used_for_fit: bool
    output: Path | None = None
    sampled_from: int | None = None  # the corpus size when the tuner was fitted on a fixed-seed sample of it
    unit: str = "texts"  # or "images"

    def delta(self) -> dict[str, float]:
        return {k: self.after.values[k] - v for k, v in self.before.values.items() if k in self.after.values}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "model": self.model,
            "output": str(self.output) if self.output else None,
            "n_fit": self.n_fit,
            "n_heldout": self.n_heldout,
            "fit_seconds": round(self.fit_seconds, 3),
            "labels_used_for_fit": self.labels_used_for_fit,
            "sampled_from": self.sampled_from,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "delta": self.delta(),
        }


@writes_output_folder("tune", inputs=("corpus", "model", "test"))
def tune(
    corpus: str | Path | list[str] | Corpus,
    *,
    method: str = "infonce",
    model: str | Encoder | None = DEFAULT_MODEL,
    output: str | Path | None = None,
    text_field: str = "text",
    label_field: str | None = None,
    use_labels: bool = True,
    test: str | Path | None = None,
    heldout_fraction: float = 0.2,
    hidden_dim: int | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    positives: str | None = None,
    k: int | None = None,
    seeds: int = 5,
    seed: int = 0,
    sample: int | None = TUNE_SAMPLE,
    batch_size: int = 64,
    device: str = "auto",
    cache: bool | VectorCache = True,
    show_progress: bool | None = None,
    write_report: bool = True,
    overwrite: bool = False,
) -> TuneResult:
    """Fit a tuner on frozen vectors of a corpus and measure it against the base vectors on held-out data.

    The tuner is fitted on the corpus minus a held-out ``heldout_fraction`` (or on all of it when ``test`` is given);
    both spaces are then scored on the held-out part with the same KMeans k and seeds. Label-free methods never see
    the labels; they are only used to report. With ``output`` the tuner is saved there (safetensors + JSON) together
    with ``tuning.json`` (base model, method, metrics) and ``report.html`` (unless ``write_report=False``). A corpus of
    more than ``sample`` texts is fitted and scored on a fixed-seed sample of that many; ``embtune encode --tuner`` then
    streams the whole corpus through the fitted tuner. ``output`` must be a new or empty folder, or one embtune wrote;
    ``overwrite=True`` lets it write into a folder holding other files (see :mod:`embtune.outputs`).

    >>> result = embtune.tune("tickets.jsonl", method="infonce", positives="neighbors", output="tuner/")
    >>> result.delta()["silhouette"]
    """
    from embtune.evaluation.probes import holdout_split
    from embtune.tuners.methods import METHODS, make_tuner

    if method not in METHODS:
        raise EmbtuneError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    spec = METHODS[method]
    if not 0 < heldout_fraction < 1:
        raise EmbtuneError(f"held-out fraction must be between 0 and 1 (got {heldout_fraction})")
    data = _load_corpus(corpus, text_field, label_field, use_labels, sample=sample, seed=seed)
    if spec.needs_labels and data.labels is None:
        raise EmbtuneError(
            f"--method {method} learns from labels, and {data.describe()}; pass --labels FIELD, "
            "or use a label-free method (autoencoder, infonce)"
        )
    tuner = make_tuner(method, hidden_dim=hidden_dim, epochs=epochs, learning_rate=learning_rate, positives=positives,
                       random_state=seed, device=device)
    vector_cache = _open_cache(cache)
    encoder = _encoder_for(model, data, device=device, cache=vector_cache)

    def encode_texts(texts: list[str], what: str) -> np.ndarray:
        with task_progress(f"encoding {what}", len(texts), show_progress) as advance:
            out, _ = encode_items(encoder, texts, cache=vector_cache, batch_size=batch_size, on_progress=advance)
        return out

    vectors = encode_texts(data.texts, data.path.name if data.path else "texts")
    labels = np.asarray(data.labels) if data.labels is not None else None
    if test is not None:
        test_data = _read_test(test, text_field, label_field, labels is not None)
        fit_x, fit_y = vectors, labels
        held_x = encode_texts(test_data.texts, Path(test).name)
        held_y = np.asarray(test_data.labels) if test_data.labels is not None else None
    else:
        if len(vectors) < 20:
            raise EmbtuneError(f"{data.describe()}: too few texts to hold some out for a fair comparison (need 20)")
        split_on = labels if labels is not None else np.zeros(len(vectors))
        fit_idx, held_idx = holdout_split(split_on, test_fraction=heldout_fraction, seed=seed)
        fit_x, held_x = vectors[fit_idx], vectors[held_idx]
        fit_y = labels[fit_idx] if labels is not None else None
        held_y = labels[held_idx] if labels is not None else None

    log.info("fitting %s on %d vectors%s", type(tuner).__name__, len(fit_x), " with labels" if spec.needs_labels else "")
    start = time.perf_counter()
    if spec.needs_labels:
        tuner.fit(fit_x, fit_y)
    else:
        tuner.fit(fit_x)
    fit_seconds = time.perf_counter() - start

    def score(train_x, held):
        return evaluate_vectors(train_x, labels=fit_y, test_vectors=held, test_labels=held_y, k=k, seeds=seeds, seed=seed)

    before = score(fit_x, held_x)
    k_used = before.info.get("k")
    after = evaluate_vectors(
        tuner.transform(fit_x), labels=fit_y, test_vectors=tuner.transform(held_x), test_labels=held_y,
        k=k_used or k, seeds=seeds, seed=seed,
    )
    result = TuneResult(
        tuner=tuner, method=method, model=encoder.name, before=before, after=after, n_fit=len(fit_x),
        n_heldout=len(held_x), fit_seconds=fit_seconds, labels_used_for_fit=spec.needs_labels,
        sampled_from=data.sampled_from, unit=data.unit,
    )
    if output is not None:
        result.output = Path(output)
        tuner.save(output)
        meta = {
            "base_model": encoder.name,
            "base_model_fingerprint": encoder.fingerprint,
            "base_model_path": str(getattr(encoder, "path", "")),
            "corpus": str(data.path) if data.path else None,
            "text_field": text_field,
            "seed": seed,
            **result.to_dict(),
        }
        atomic_write_text(Path(output) / TUNING_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        if write_report:
            base_spec = encoder.source if encoder.modality == "image" else model if isinstance(model, str) else None
            report(data, before=base_spec, after=output,
                   output=Path(output) / "report.html", k=k, seeds=seeds, seed=seed, device=device, cache=vector_cache)
    return result


def load_tuner_with_base(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """A saved tuner and its ``tuning.json`` (which names the base model it expects vectors from; {} if absent)."""
    from embtune.tuners.base import load_tuner

    tuner = load_tuner(path)
    meta_path = Path(path) / TUNING_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return tuner, meta


# -- finetune: the whole model -------------------------------------------------------------------------------------

EVAL_SIZE = 1000  # held-out texts watched during training (at most 10 % of the corpus)
STS_MONITOR_PAIRS = 500


@dataclass
class FinetuneResult:
    """Where the model went, how training ended, and the held-out metrics at the start and for the kept weights."""

    output: Path
    objective: str
    base_model: str
    steps: int
    kept_step: int
    stopped: str
    seconds: float
    n_train: int
    n_eval: int
    before: dict[str, float]
    after: dict[str, float]
    history: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        delta = {k: self.after[k] - v for k, v in self.before.items() if k in self.after}
        return {
            "output": str(self.output), "objective": self.objective, "base_model": self.base_model,
            "steps": self.steps, "kept_step": self.kept_step, "stopped": self.stopped, "seconds": round(self.seconds, 1),
            "n_train": self.n_train, "n_eval": self.n_eval, "before": self.before, "after": self.after, "delta": delta,
            "history": self.history,
        }


def _training_items(objective_cls, corpus, text_field, label_field, use_labels, paraphrase_field):
    """Items for the objective's kind of data, plus the texts and labels used to watch training."""
    if objective_cls.data == "images":
        data = _load_corpus(corpus, text_field, label_field, use_labels)
        if data.unit != "images":
            raise EmbtuneError(
                f"--objective {objective_cls.name} trains image models, and {data.describe()}; pass a folder of images "
                "or an index file (.jsonl/.csv) with a 'path' field"
            )
        return list(data.texts), data.texts, data.labels, str(data.path) if data.path else "images"
    if objective_cls.data == "texts":
        if paraphrase_field:
            from embtune.data.corpus import read_paraphrase_corpus

            data, paraphrases = read_paraphrase_corpus(corpus, text_field=text_field, paraphrase_field=paraphrase_field)
            items = [(t, p) if p else t for t, p in zip(data.texts, paraphrases)]
        else:
            data = _load_corpus(corpus, text_field, label_field, use_labels)
            items = list(data.texts)
        return items, data.texts, data.labels, str(data.path) if data.path else "texts"
    if objective_cls.data == "labelled":
        data = _load_corpus(corpus, text_field, label_field or "label", True)
        if data.labels is None:
            raise EmbtuneError(f"--objective {objective_cls.name} trains on labels: pass --labels FIELD")
        return list(zip(data.texts, data.labels)), data.texts, data.labels, str(data.path) if data.path else "texts"
    pairs = read_pairs(corpus)
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
    texts = list(dict.fromkeys(pairs.text1 + pairs.text2))
    return items, texts, None, str(pairs.path)


@writes_output_folder("finetune", inputs=("corpus", "model"))
def finetune(
    corpus: str | Path,
    *,
    objective: str = "augment",
    model: str | None = DEFAULT_MODEL,
    output: str | Path,
    text_field: str = "text",
    label_field: str | None = None,
    use_labels: bool = True,
    paraphrase_field: str | None = None,
    sts: str | Path | None = None,
    epochs: float = 1.0,
    max_steps: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    grad_accum: int = 1,
    max_seq_length: int | None = None,
    resolution: int | None = None,
    model_options: dict[str, Any] | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = None,
    early_stopping: str | None = None,
    patience: int = 3,
    max_minutes: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    objective_params: dict[str, Any] | None = None,
    collapse_guard: bool = True,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool | None = None,
    write_report: bool = True,
) -> FinetuneResult:
    """Fine-tune the whole model on a corpus with ``objective`` and export it to ``output`` (a sentence-transformers
    folder with a model card). Label-free objectives read texts; ``mnrl`` reads pairs (text1, text2[, negative]);
    ``cosine``/``cosent`` read scored pairs. Image objectives (simclr, moco, byol, autoencoder, inpaint) read an image
    folder or index and train an image backbone (default EfficientNet-Lite0 at ``resolution`` pixels, 128), exported
    as safetensors + config.json. ``model="use-multilingual-v3"`` fine-tunes the Universal Sentence Encoder port;
    ``model_options`` are its settings (``freeze_embeddings``, ``dropout``).

    A held-out slice of the corpus (up to 1,000 texts, never trained on) is evaluated at the start and every
    ``eval_every`` steps; labels in the corpus and an ``sts`` pair file are used there to watch, never to train.
    Checkpoints go to ``output/checkpoints``; ``resume=True`` continues the last one exactly. A before/after report is
    written to ``output/report.html`` (``write_report=False`` skips it). ``collapse_guard=False`` lets a collapsing run
    go on (to measure what an objective does; the product default stops it).

    >>> result = embtune.finetune("tickets.jsonl", objective="augment", output="out/", max_steps=200)
    >>> result.after["silhouette"] - result.before["silhouette"]
    """
    from embtune.data.augment import dropout_views
    from embtune.encoders.sentence_transformer import SentenceTransformerEncoder
    from embtune.evaluation.clustering import choose_k
    from embtune.training.export import export_model
    from embtune.training.objectives import make_objective, objective_class
    from embtune.training.objectives.anchor import AnchoredObjective, describe_anchor
    from embtune.training.objectives.base import encode_frozen
    from embtune.training.trainer import EvalSet, TrainConfig, evaluate_model, train
    from embtune.progress import training_progress

    output = Path(output)
    checkpoint_dir = output / "checkpoints"
    tensorflow = isinstance(model, str) and model.startswith("tfhub:")
    if tensorflow:
        from embtune.training.tf_loop import TF_OBJECTIVES

        if objective not in TF_OBJECTIVES:
            raise EmbtuneError(f"--objective {objective}: TensorFlow models fine-tune with {' or '.join(TF_OBJECTIVES)}")
    else:
        objective_cls = objective_class(objective)
    from embtune.training import distributed

    if distributed.launched():
        if tensorflow:
            raise EmbtuneError("TensorFlow models train in one process; run without torchrun / --nproc")
        device = distributed.init_if_launched(device)
        show_progress = show_progress if distributed.is_main() else False
    if distributed.is_main():
        _check_output_folder(output, resume, overwrite)
    distributed.barrier()
    if tensorflow:
        return _finetune_tfhub(
            corpus, objective=objective, model=model, output=output, text_field=text_field, label_field=label_field,
            use_labels=use_labels, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
            learning_rate=learning_rate, eval_every=eval_every, checkpoint_every=checkpoint_every,
            max_minutes=max_minutes, resume=resume, objective_params=objective_params, collapse_guard=collapse_guard,
            seed=seed, show_progress=show_progress,
        )
    images = objective_cls.data == "images"
    if not images and isinstance(corpus, (str, Path)) and Path(corpus).is_dir():
        raise EmbtuneError(f"{corpus} is a folder of images: use an image objective (--objective simclr, moco, byol, "
                           "autoencoder or inpaint)")
    items, watch_texts, watch_labels, source = _training_items(
        objective_cls, corpus, text_field, label_field, use_labels, paraphrase_field
    )
    # Hold out a slice to watch: it is never trained on (for pair data, its pairs are dropped from training).
    rng = np.random.default_rng(seed)
    n_eval = min(EVAL_SIZE, len(watch_texts) // 10)
    eval_set = None
    if n_eval >= 20:
        pick = np.sort(rng.permutation(len(watch_texts))[:n_eval])
        eval_texts = [watch_texts[i] for i in pick]
        held = set(eval_texts)
        items = [it for it in items if (it[0] if isinstance(it, tuple) else it) not in held
                 and not (isinstance(it, tuple) and len(it) > 1 and isinstance(it[1], str) and it[1] in held)]
        eval_labels = [watch_labels[i] for i in pick] if watch_labels is not None else None
        sts_pairs = None
        if sts is not None:
            sts_data = read_pairs(sts)
            if sts_data.scores is None:
                raise InputError(sts_data.path, "--sts needs a pair file with a 'score' field (e.g. STS-B)")
            keep = rng.permutation(len(sts_data))[:STS_MONITOR_PAIRS]
            sts_pairs = ([sts_data.text1[i] for i in keep], [sts_data.text2[i] for i in keep], sts_data.scores[keep])
        eval_set = EvalSet(texts=eval_texts, labels=eval_labels, sts=sts_pairs,
                           view_texts=None if images else dropout_views(eval_texts, seed=seed))
    elif early_stopping:
        raise EmbtuneError(f"--early-stopping needs a held-out slice: the corpus is too small ({len(watch_texts)} texts)")

    if images:
        encoder = _encoder_for(model, Corpus(texts=[], path=Path(source), unit="images"), device=device, cache=None)
        if resolution:
            encoder.resolution = resolution
        resolved = resolve_model(encoder.source)
        st_model = encoder.model
    else:
        resolved = resolve_model(model)
        if resolved.backend == "use":  # the USE port trains with every text objective that only needs embeddings
            from embtune.encoders.use import USEEncoder

            if objective in ("tsdae", "mlm"):
                raise EmbtuneError(f"--objective {objective} needs a transformer with a decoder or MLM head; "
                                   f"{resolved.name} is a DAN/CNN encoder: use augment, simcse, ct, neighbors, ...")
            use_options = {k: v for k, v in (model_options or {}).items() if v is not None}
            if max_seq_length:
                use_options["max_seq_length"] = max_seq_length
            encoder = USEEncoder(resolved.path if resolved.path.is_dir() else resolved.name, name=resolved.name,
                                 device=device, **use_options)
        else:
            unused = sorted(k for k, v in (model_options or {}).items() if v is not None)
            if unused:
                raise EmbtuneError(f"{', '.join('--' + k.replace('_', '-') for k in unused)}: only for "
                                   "--model use-multilingual-v3 (or a folder fine-tuned from it)")
            encoder = SentenceTransformerEncoder(resolved.path, name=resolved.name, device=device,
                                                 max_seq_length=max_seq_length)
        st_model = encoder.model
    if eval_set is not None:
        if eval_set.labels is not None:
            eval_set.k = len(set(eval_set.labels))
        else:  # fixed for the whole run: chosen once on the base model's vectors
            eval_set.k, _ = choose_k(encode_frozen(st_model, eval_set.texts), seed=seed)
    objective_module = make_objective(objective, st_model, **(objective_params or {}))
    anchor = objective_module.weight if isinstance(objective_module, AnchoredObjective) else 0.0  # as built
    config = TrainConfig(
        epochs=epochs, max_steps=max_steps, batch_size=batch_size or objective_cls.defaults["batch_size"],
        grad_accum=grad_accum, learning_rate=learning_rate or objective_cls.defaults["learning_rate"],
        eval_every=eval_every, checkpoint_every=checkpoint_every, early_stopping_metric=early_stopping,
        patience=patience, max_minutes=max_minutes, seed=seed, collapse_ratio=0.25 if collapse_guard else 0.0,
    )
    if distributed.is_main():
        _check_room_to_train(output, st_model)
    log.info(
        "fine-tuning %s with %s%s on %d items (%d held out to watch), %d steps of %d, lr %g",
        resolved.name, objective, f" {describe_anchor(anchor)}" if anchor else "", len(items),
        n_eval if eval_set else 0, config.total_steps(len(items)), config.batch_size, config.learning_rate,
    )
    with training_progress(config.total_steps(len(items)), show_progress, f"{objective}") as update:
        result = train(st_model, objective_module, items, config, checkpoint_dir=checkpoint_dir, eval_set=eval_set,
                       resume=resume, on_step=update)
    after = evaluate_model(st_model, eval_set) if eval_set is not None else {}
    if not distributed.is_main():  # the other processes trained the same weights; rank 0 exports them
        distributed.barrier()
        return FinetuneResult(
            output=output, objective=objective, base_model=resolved.name, steps=result.steps,
            kept_step=result.kept_step, stopped=result.stopped, seconds=result.seconds, n_train=len(items),
            n_eval=len(eval_set.texts) if eval_set else 0, before=result.initial, after=after, history=result.history,
        )
    summary = {
        "base_model": resolved.name, "base_model_path": str(resolved.path), "objective": objective,
        "objective_summary": objective_module.summary, "anchor": anchor, "corpus": source, "n_train": len(items),
        "n_eval": len(eval_set.texts) if eval_set else 0, "steps": result.steps, "kept_step": result.kept_step,
        "stopped": result.stopped, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "seed": seed, "seconds": result.seconds, "output": str(output), "before": result.initial, "after": after,
        "history": result.history, "losses": result.losses, "config": asdict(config),
    }
    if images:
        summary.update(modality="image", resolution=st_model.resolution, base_model_path=encoder.source)
    elif resolved.backend == "use":
        summary.update(backend="use")
    export_model(st_model, output, summary)
    if write_report and objective_cls.data in ("texts", "images"):
        report(corpus, before=encoder.source if images else model, after=output, output=output / "report.html",
               text_field=text_field, label_field=label_field, use_labels=use_labels, seed=seed, device=device)
    distributed.barrier()  # the other processes wait for the export before they exit
    return FinetuneResult(
        output=output, objective=objective, base_model=resolved.name, steps=result.steps, kept_step=result.kept_step,
        stopped=result.stopped, seconds=result.seconds, n_train=len(items), n_eval=summary["n_eval"],
        before=result.initial, after=after, history=result.history,
    )


def _check_room_to_train(output: Path, module) -> None:
    """Fail before training when the output's disk cannot hold a checkpoint (the weights and Adam's two moments, 3x the
    parameters) plus the exported model (1x)."""
    from embtune.outputs import check_free_space

    if hasattr(module, "parameters"):
        weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
        check_free_space(output, 4 * weight_bytes, "fine-tuning (a checkpoint with optimizer state, then the exported model)")


def _check_output_folder(output: Path, resume: bool, overwrite: bool) -> None:
    """A finetune output folder: --resume needs its checkpoints; a new run needs it free of them (or --overwrite)."""
    checkpoint_dir = output / "checkpoints"
    if resume and not checkpoint_dir.is_dir():
        raise EmbtuneError(f"--resume: {output} has no checkpoints/ folder; run without --resume to start")
    if not resume and checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()):
        if not overwrite:
            raise EmbtuneError(
                f"{output} already holds a training run (checkpoints/); pass --resume to continue it or --overwrite "
                "to start over"
            )
        import shutil

        shutil.rmtree(checkpoint_dir)


def _finetune_tfhub(corpus, *, objective, model, output: Path, text_field, label_field, use_labels, epochs, max_steps,
                    batch_size, learning_rate, eval_every, checkpoint_every, max_minutes, resume, objective_params,
                    collapse_guard, seed, show_progress) -> FinetuneResult:
    """``finetune`` for a TensorFlow SavedModel: the TF loop of training/tf_loop.py, the result saved as a SavedModel
    in ``output`` (reloads with ``hub.load`` and ``--model tfhub:OUTPUT``) with the same embtune.json and card."""
    from embtune.encoders.tfhub import tfhub_path
    from embtune.training.export import export_model
    from embtune.training.tf_loop import finetune_tf
    from embtune.training.trainer import EvalSet, TrainConfig
    from embtune.progress import training_progress

    path = tfhub_path(model)
    data = _load_corpus(corpus, text_field, label_field, use_labels)
    rng = np.random.default_rng(seed)
    n_eval = min(EVAL_SIZE, len(data) // 10)
    items, eval_set = list(data.texts), None
    if n_eval >= 20:
        pick = np.sort(rng.permutation(len(items))[:n_eval])
        held = set(pick.tolist())
        eval_set = EvalSet(texts=[items[i] for i in pick],
                           labels=[data.labels[i] for i in pick] if data.labels is not None else None)
        items = [t for i, t in enumerate(items) if i not in held]
    params = dict(objective_params or {})
    options = {k: params.pop(k) for k in ("temperature", "bottleneck") if k in params}
    if params:
        raise EmbtuneError(f"--model tfhub:...: options {', '.join(sorted(params))} are not used by the TensorFlow loop")
    config = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size or 32,
                         learning_rate=learning_rate or 1e-4, eval_every=eval_every, checkpoint_every=checkpoint_every,
                         max_minutes=max_minutes, seed=seed, collapse_ratio=0.25 if collapse_guard else 0.0)
    if eval_set is not None and eval_set.labels is not None:
        eval_set.k = len(set(eval_set.labels))
    elif eval_set is not None:
        eval_set.k = max(2, min(50, n_eval // 10))
    log.info("fine-tuning %s (TensorFlow) with %s on %d items, %d steps of %d", path.name, objective, len(items),
             config.total_steps(len(items)), config.batch_size)
    with training_progress(config.total_steps(len(items)), show_progress, objective) as update:
        result, tf_model = finetune_tf(path, items, objective, output, config, eval_set=eval_set, resume=resume,
                                       on_step=update, **options)
    after = result.history[-1]["metrics"] if result.history and result.history[-1]["step"] == result.kept_step else {}
    if eval_set is not None and not after:
        from embtune.evaluation.monitor import training_metrics

        after = training_metrics(tf_model.encode(eval_set.texts), k=eval_set.k, labels=eval_set.labels)
    summary = {
        "base_model": f"tfhub:{path}", "base_model_path": str(path), "objective": objective, "backend": "tfhub",
        "objective_summary": "TensorFlow loop: " + ("two augmented views, normalised InfoNCE" if objective == "augment"
                                                    else "dense bottleneck rebuilds the base vectors"),
        "corpus": str(data.path) if data.path else "texts", "n_train": len(items),
        "n_eval": len(eval_set.texts) if eval_set else 0, "steps": result.steps, "kept_step": result.kept_step,
        "stopped": result.stopped, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "seed": seed, "seconds": result.seconds, "output": str(output), "before": result.initial, "after": after,
        "history": result.history, "losses": result.losses, "config": asdict(config),
    }
    export_model(tf_model.module, output, summary,
                 save=lambda folder: tf_model.tf.saved_model.save(tf_model.module, str(folder)))
    return FinetuneResult(
        output=output, objective=objective, base_model=f"tfhub:{path.name}", steps=result.steps,
        kept_step=result.kept_step, stopped=result.stopped, seconds=result.seconds, n_train=len(items),
        n_eval=summary["n_eval"], before=result.initial, after=after, history=result.history,
    )


# -- report: before / after in pictures -----------------------------------------------------------------------------

REPORT_SAMPLE = 3000  # texts drawn (fixed seed) for maps, silhouettes and neighbours


@dataclass
class ReportResult:
    output: Path
    before: Metrics
    after: Metrics
    data: Any


def _after_space(after, before_model, vector_cache, device):
    """(name, function texts -> vectors, training record) for what ``after`` names: a tuner folder or a model."""
    path = Path(str(after))
    if (path / "config.json").is_file() and '"embtune_tuner"' in (path / "config.json").read_text(errors="replace"):
        tuner, meta = load_tuner_with_base(path)
        base = load_encoder(before_model or meta.get("base_model") or DEFAULT_MODEL, device=device, cache=vector_cache)

        def tuned(texts):
            vectors, _ = encode_items(base, texts, cache=vector_cache)
            return tuner.transform(vectors)

        record = {"losses": [[i + 1, v] for i, v in enumerate(getattr(tuner, "history_", []))], "history": [],
                  "loss_unit": "epoch", "method": meta.get("method"), "n_fit": meta.get("n_fit")}
        return f"{type(tuner).__name__} ({path.name})", tuned, record
    encoder = load_encoder(str(after), device=device, cache=vector_cache)
    summary = path / "embtune.json"
    record = json.loads(summary.read_text()) if summary.is_file() else None

    def encoded(texts):
        vectors, _ = encode_items(encoder, texts, cache=vector_cache)
        return vectors

    return encoder.name, encoded, record


def report(
    corpus: str | Path,
    *,
    before: str | None = DEFAULT_MODEL,
    after: str | Path,
    output: str | Path = "report.html",
    text_field: str = "text",
    label_field: str | None = None,
    use_labels: bool = True,
    k: int | None = None,
    seeds: int = 5,
    seed: int = 0,
    projection: str = "pca",
    title: str | None = None,
    notes: list[str] | None = None,
    tables: list | None = None,
    device: str = "auto",
    cache: bool | VectorCache = True,
) -> ReportResult:
    """Write a before/after report (self-contained HTML, or Markdown when ``output`` ends in .md): the metric table
    with a verdict per metric, 2-D maps, per-cluster silhouettes, training curves when ``after`` came from the trainer
    or a tuner, and the nearest neighbours of sample texts before vs after.

    ``after`` is a model (name or folder) or a tuner folder from ``embtune tune -o`` (then ``before`` defaults to the
    tuner's base model).

    >>> embtune.report("tickets.jsonl", before="all-MiniLM-L6-v2", after="out/", output="report.html")
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_samples

    from embtune.data.vectors import l2_normalize, nearest_neighbors
    from embtune.report.html import Figure, ReportData, render_html, render_markdown
    from embtune.report.plots import project_2d, scatter_pair, silhouette_bars, training_curves

    output = prepare_output_file(output, inputs=[corpus if isinstance(corpus, (str, Path)) else None])
    for model_path in (before, after):
        if isinstance(model_path, (str, Path)) and Path(model_path).exists() and Path(model_path).resolve() == output.resolve():
            raise EmbtuneError(f"{output}: the report would replace the model {model_path}; name a .html or .md file")
    data = _load_corpus(corpus, text_field, label_field, use_labels)
    vector_cache = _open_cache(cache)
    after_name, after_fn, record = _after_space(after, before if before != DEFAULT_MODEL else None, vector_cache, device)
    before_encoder = _encoder_for(before, data, device=device, cache=vector_cache)
    pick = np.sort(np.random.default_rng(seed).permutation(len(data))[:REPORT_SAMPLE])
    texts = [data.texts[i] for i in pick]
    labels = np.asarray(data.labels)[pick] if data.labels is not None else None
    before_x, _ = encode_items(before_encoder, texts, cache=vector_cache)
    after_x = np.asarray(after_fn(texts), dtype=np.float32)

    before_m = evaluate_vectors(before_x, labels=labels, k=k, seeds=seeds, seed=seed)
    after_m = evaluate_vectors(after_x, labels=labels, k=before_m.info.get("k") or k, seeds=seeds, seed=seed)
    figures = []
    groups = labels if labels is not None else KMeans(n_clusters=before_m.info["k"], n_init=1, random_state=seed).fit_predict(l2_normalize(before_x))
    coloured_by = "label" if labels is not None else f"KMeans cluster (k={before_m.info['k']}, on the 'before' space)"
    before_xy, method = project_2d(l2_normalize(before_x), projection, seed)
    after_xy, _ = project_2d(l2_normalize(after_x), projection, seed)
    figures.append(Figure(f"Map of the space ({method})", scatter_pair(before_xy, after_xy, groups, title=f"coloured by {coloured_by}", method=method),
                          f"{len(texts)} texts projected to 2-D, coloured by {coloured_by}. Tighter, better separated colours mean a "
                          "space that keeps those groups apart; 2-D maps distort, so read them with the table."))
    names = np.unique(groups)
    if 1 < len(names) < len(texts):
        per = [silhouette_samples(l2_normalize(x), groups, metric="cosine") for x in (before_x, after_x)]
        means = [np.array([s[groups == g].mean() for g in names]) for s in per]
        figures.append(Figure("Silhouette per group", silhouette_bars(*means, title=f"mean silhouette per {coloured_by.split(' (')[0]}"),
                              "For each group, how much closer its members sit to each other than to the nearest other "
                              "group (cosine), before (grey) and after (blue)."))
    if record and (record.get("losses") or record.get("history")):
        figures.append(Figure("Training", training_curves(record.get("losses", []), record.get("history", []),
                                                          title=f"{after_name}", unit=record.get("loss_unit", "step")),
                              "Loss per step and the metrics watched on the held-out slice during training."))
    neighbours = []
    sample_queries = np.random.default_rng(seed + 1).permutation(len(texts))[:10]
    nb_before, nb_after = nearest_neighbors(before_x, 5), nearest_neighbors(after_x, 5)
    for q in sample_queries:
        neighbours.append({"query": texts[q], "before": [texts[j] for j in nb_before[q]],
                           "after": [texts[j] for j in nb_after[q]]})
    config = {"before": before_encoder.name, "after": after_name, "corpus": str(data.path or "texts"),
              "texts in the corpus": len(data), "texts in this report": len(texts), "KMeans k": before_m.info.get("k"),
              "KMeans seeds": seeds, "seed": seed}
    if record:
        for key in ("objective", "method", "steps", "kept_step", "stopped", "learning_rate", "batch_size", "n_train", "n_fit"):
            if key in record:
                config[f"training: {key}"] = record[key]
    notes = list(notes or [])
    if labels is not None:
        notes.append("Labels are used here only to score and colour: label metrics of probes are on a held-out split.")
    report_data = ReportData(
        title=title or f"embtune report: {before_encoder.name} → {after_name}", before_name=before_encoder.name,
        after_name=after_name, corpus=Path(str(data.path)).name if data.path else "texts", n_texts=len(data),
        n_labels=data.n_labels, before=before_m, after=after_m, figures=figures, neighbours=neighbours, config=config,
        notes=notes, tables=list(tables or []),
    )
    rendered = render_markdown(report_data) if output.suffix.lower() == ".md" else render_html(report_data)
    atomic_write_text(output, rendered)
    return ReportResult(output=output, before=before_m, after=after_m, data=report_data)


# -- classify: pretrained embeddings in a downstream classifier --------------------------------------------------

CLASSIFY_METHODS = ("textcnn", "fewshot", "logreg")


@dataclass
class ClassifyResult:
    """Held-out scores of a trained classifier: accuracy, macro-F1 and the most frequent confusions."""

    classifier: Any
    method: str
    n_train: int
    n_test: int
    accuracy: float
    macro_f1: float
    confusions: list[tuple[str, str, int]]
    fit_seconds: float
    output: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "n_train": self.n_train, "n_test": self.n_test, "accuracy": self.accuracy,
                "macro_f1": self.macro_f1, "fit_seconds": round(self.fit_seconds, 2),
                "confusions": [{"true": t, "predicted": p, "count": c} for t, p, c in self.confusions],
                "output": str(self.output) if self.output else None}


def make_classifier(method: str, *, model: str = DEFAULT_MODEL, frozen: bool | None = None, seed: int = 0,
                    device: str = "auto", **options):
    """A classifier for ``method``: textcnn (frozen token embeddings unless ``frozen=False``), fewshot (fine-tuned
    encoder unless ``frozen=True``), logreg (logistic regression on the frozen sentence vectors)."""
    from embtune.downstream import FewShotClassifier, TextCNNClassifier

    if method == "textcnn":
        return TextCNNClassifier(model=model, embeddings="trainable" if frozen is False else "frozen",
                                 random_state=seed, device=device, **options)
    if method == "fewshot":
        return FewShotClassifier(model=model, frozen=bool(frozen), random_state=seed, device=device, **options)
    if method == "logreg":
        if frozen is False:
            raise EmbtuneError("--method logreg is a head on frozen vectors; use --method fewshot to train the encoder")
        return FewShotClassifier(model=model, epochs=0, random_state=seed, device=device, **options)
    raise EmbtuneError(f"--method {method!r}: use one of {', '.join(CLASSIFY_METHODS)}")


@writes_output_folder("classify", inputs=("train", "test", "model"))
def classify(
    train: str | Path | Corpus,
    *,
    test: str | Path | Corpus | None = None,
    method: str = "textcnn",
    model: str = DEFAULT_MODEL,
    frozen: bool | None = None,
    output: str | Path | None = None,
    text_field: str = "text",
    label_field: str = "label",
    test_fraction: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ClassifyResult:
    """Train a classifier on labelled texts and score it on ``test`` (or a stratified ``test_fraction`` held out).

    ``output`` (a folder) must be new, empty or embtune's own unless ``overwrite=True`` (see :mod:`embtune.outputs`).

    >>> result = embtune.classify("train.jsonl", test="test.jsonl", method="textcnn", output="clf/")
    >>> result.accuracy, result.macro_f1
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    from embtune.evaluation.probes import holdout_split

    def labelled(source) -> Corpus:
        return source if isinstance(source, Corpus) else read_corpus(
            source, text_field=text_field, label_field=label_field, require_labels=True)

    data = labelled(train)
    if data.labels is None:
        raise EmbtuneError(f"{data.describe()}: classify needs a label per text (--labels FIELD)")
    texts, labels = list(data.texts), np.asarray(data.labels)
    if test is not None:
        test_data = labelled(test)
        test_texts, test_labels = list(test_data.texts), np.asarray(test_data.labels)
    else:
        fit_idx, test_idx = holdout_split(labels, test_fraction=test_fraction, seed=seed)
        test_texts, test_labels = [texts[i] for i in test_idx], labels[test_idx]
        texts, labels = [texts[i] for i in fit_idx], labels[fit_idx]
    clf = make_classifier(method, model=model, frozen=frozen, seed=seed, device=device, **(options or {}))
    log.info("training %s on %d texts (%d labels), scoring on %d", type(clf).__name__, len(texts),
             len(set(labels.tolist())), len(test_texts))
    start = time.perf_counter()
    clf.fit(texts, labels)
    fit_seconds = time.perf_counter() - start
    predicted = clf.predict(test_texts)
    names = np.unique(np.concatenate([labels, test_labels]))
    matrix = confusion_matrix(test_labels, predicted, labels=names)
    np.fill_diagonal(matrix, 0)
    worst = np.dstack(np.unravel_index(np.argsort(matrix, axis=None)[::-1], matrix.shape))[0][:5]
    confusions = [(str(names[i]), str(names[j]), int(matrix[i, j])) for i, j in worst if matrix[i, j] > 0]
    result = ClassifyResult(
        classifier=clf, method=method, n_train=len(texts), n_test=len(test_texts),
        accuracy=float(accuracy_score(test_labels, predicted)),
        macro_f1=float(f1_score(test_labels, predicted, average="macro", zero_division=0)),
        confusions=confusions, fit_seconds=fit_seconds,
    )
    if output is not None:
        result.output = clf.save(output)
    return result


def predict(classifier: str | Path, corpus: str | Path | list[str], *, text_field: str = "text") -> list[dict[str, Any]]:
    """Labels (and the classifier's probability for each) for the texts of ``corpus`` with a saved classifier.

    >>> embtune.predict("clf/", ["my card was charged twice"])[0]["label"]
    """
    from embtune.downstream import load_classifier

    clf = load_classifier(classifier)
    texts = _check_texts(corpus) if isinstance(corpus, list) else read_corpus(
        corpus, text_field=text_field, label_field=None).texts
    proba = clf.predict_proba(texts)
    if getattr(clf, "multi_label", False):
        return [{"text": t, "labels": [str(c) for c, p in zip(clf.classes_, row) if p >= 0.5]} for t, row in zip(texts, proba)]
    best = proba.argmax(axis=1)
    return [{"text": t, "label": str(clf.classes_[b]), "probability": round(float(row[b]), 4)}
            for t, b, row in zip(texts, best, proba)]
