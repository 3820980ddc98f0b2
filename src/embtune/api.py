"""The public functions: each wires data, encoders, tuners, training, evaluation and report together, and holds no
logic of its own (that lives in the layers; see ARCHITECTURE.md). The CLI is a thin shell over these."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embtune.data.corpus import Corpus, read_corpus
from embtune.data.images import is_image_corpus, read_image_corpus
from embtune.data.load import check_texts, first_texts, load_corpus, load_labelled, load_vectors, read_test, refuse_bare_text, sample_note
from embtune.data.pairs import read_pairs
from embtune.data.vectors import NpyStreamWriter, l2_normalize
from embtune.downstream.methods import CLASSIFY_METHODS, make_classifier
from embtune.encoders import CALIBRATED_BACKENDS, DEFAULT_MODEL, Encoder, VectorCache, encoder_for, load_encoder, open_cache
from embtune.encoders.cache import directory_fingerprint
from embtune.encoders.encode import EncodeStats, encode_file, encode_items, encode_shown, estimate_rows
from embtune.errors import EmbtuneError
from embtune.evaluation.metrics import Metrics, dropout_view_pairs, evaluate_vectors, pair_vectors
from embtune.outputs import prepare_output_file, writes_output_folder
from embtune.progress import task_progress
from embtune.report.build import REPORT_SAMPLE, ReportResult, Side, build_report, report_sample, write_report
from embtune.training.summary import FinetuneResult
from embtune.tuners.folder import TUNING_FILE, load_tuner_with_base, model_or_tuner, open_model, tuner_and_base_model

log = logging.getLogger(__name__)

ALIGNMENT_SAMPLE = 512  # texts re-encoded with word dropout to measure alignment when there is no pair file
EVALUATE_SAMPLE = 20_000  # texts scored by `evaluate` on a bigger corpus: metrics are stable well before that
TUNE_SAMPLE = 100_000  # texts a tuner is fitted and scored on; `encode --tuner` then streams the whole corpus

__all__ = ["ALIGNMENT_SAMPLE", "CLASSIFY_METHODS", "EVALUATE_SAMPLE", "REPORT_SAMPLE", "TUNE_SAMPLE", "TUNING_FILE",
           "ClassifyResult", "EncodeResult", "Evaluation", "FinetuneResult", "ReportResult", "TuneResult", "classify",
           "encode", "encode_corpus", "encode_on_ray", "evaluate", "finetune", "load_tuner_with_base",
           "make_classifier", "predict", "report", "tune"]


@dataclass
class EncodeResult:
    """Vectors (an array, or a memory-mapped .npy when written to ``output``) and what the encode did."""

    vectors: np.ndarray
    stats: EncodeStats
    model: str
    output: Path | None = None


def encode_corpus(
    corpus: str | Path | list[str], *, model: str | Encoder | None = None, tuner: str | Path | Any | None = None,
    output: str | Path | None = None, text_field: str = "text", id_field: str | None = None, batch_size: int = 64,
    chunk_size: int = 8192, normalize: bool = True, device: str = "auto", backend: str = "torch", processes: int = 1,
    cache: bool | VectorCache = True, show_progress: bool | None = None,
) -> EncodeResult:
    """Encode a corpus file or folder of shards (streamed in chunks) or a list of texts, through the vector cache.

    With ``output`` the vectors go to a .npy file and come back memory-mapped; a text corpus is then streamed with flat
    memory, its row ids (``id_field``'s values, else row numbers) go to ``<output stem>.ids.jsonl``, and a killed run
    started again resumes after the last chunk it wrote. With ``tuner`` (a fitted tuner or the folder one was saved to)
    the model's vectors pass through it; ``model`` then defaults to the base model the tuner was fitted on, else to
    all-MiniLM-L6-v2. ``backend`` "onnx" / "onnx-int8" runs a text model with ONNX Runtime, "openvino" /
    "openvino-int8" with OpenVINO, int8 calibrated on the corpus (see :mod:`embtune.encoders.openvino`). ``processes`` > 1 runs that many copies of the model in worker processes (the CPU
    cores shared out between them, or one GPU each; see :mod:`embtune.encoders.multiprocess`).

    >>> result = encode_corpus("corpus.jsonl", output="vectors.npy")
    >>> result.vectors.shape, result.stats.from_cache
    """
    if batch_size < 1:
        raise EmbtuneError(f"--batch-size must be at least 1 (got {batch_size})")
    refuse_bare_text(corpus)
    if output is not None:
        from embtune.data.resumable import ids_path_for

        side = [ids_path_for(output)] if isinstance(corpus, (str, Path)) else []
        output = prepare_output_file(output, inputs=[corpus, tuner, model], side_files=side)
    vector_cache = open_cache(cache)
    transform = transform_id = None
    if tuner is None:
        model, tuner = model_or_tuner(model)  # an `embtune auto` or tuner folder given as --model
    if tuner is not None:
        if isinstance(tuner, (str, Path)) and Path(tuner).is_dir():
            transform_id = directory_fingerprint(Path(tuner), vector_cache)
        tuner, model = tuner_and_base_model(tuner, model, vector_cache, device)
        transform = tuner.transform
    image_data = read_image_corpus(corpus, use_labels=False) if isinstance(corpus, (str, Path)) and is_image_corpus(corpus) else None
    if image_data is not None:
        encoder = encoder_for(model, image_data, device=device, cache=vector_cache, backend=backend)
    else:
        # int8 that is calibrated is calibrated on texts from this corpus (a spread sample of its first chunk)
        calibration = first_texts(corpus, text_field) if backend in CALIBRATED_BACKENDS else None
        encoder = load_encoder(model or DEFAULT_MODEL, device=device, cache=vector_cache, backend=backend,
                               calibration=calibration)
    with ExitStack() as stack:
        if processes > 1:
            from embtune.encoders.multiprocess import ProcessPoolEncoder

            by_name = image_data is None and (model is None or isinstance(model, str))
            encoder = ProcessPoolEncoder(encoder, processes=processes, model=(model or DEFAULT_MODEL) if by_name else None,
                                         device=device, backend=backend)
            stack.callback(encoder.close)
        return _encode(encoder, corpus, image_data, output, text_field=text_field, id_field=id_field,
                       batch_size=batch_size, chunk_size=chunk_size, normalize=normalize, vector_cache=vector_cache,
                       show_progress=show_progress, transform=transform, transform_id=transform_id)


def _encode(encoder, corpus, image_data, output, *, text_field, id_field, batch_size, chunk_size, normalize,
            vector_cache, show_progress, transform, transform_id) -> EncodeResult:
    """encode_corpus once the encoder is chosen: stream a corpus file to ``output``, or encode texts in memory."""
    if image_data is not None:
        texts = image_data.texts
    elif isinstance(corpus, (str, Path)):
        corpus_path = Path(corpus)
        if output is not None:
            with task_progress(f"encoding {corpus_path.name}", estimate_rows(corpus_path), show_progress) as advance:
                stats = encode_file(encoder, corpus_path, output, text_field=text_field, id_field=id_field,
                                    cache=vector_cache, batch_size=batch_size, chunk_size=chunk_size,
                                    normalize=normalize, on_progress=advance, transform=transform,
                                    transform_id=transform_id)
            return EncodeResult(np.load(output, mmap_mode="r"), stats, encoder.name, Path(output))
        texts = read_corpus(corpus_path, text_field=text_field, label_field=None).texts
    else:
        texts = check_texts(corpus)
    with task_progress("encoding", len(texts), show_progress) as advance:
        vectors, stats = encode_items(encoder, texts, cache=vector_cache, batch_size=batch_size,
                                      normalize=normalize or transform is not None, on_progress=advance)
    if transform is not None:
        vectors = np.asarray(transform(vectors), dtype=np.float32)
        vectors = l2_normalize(vectors) if normalize else vectors
    stats.dim = vectors.shape[1]
    if output is None:
        return EncodeResult(vectors, stats, encoder.name)
    with NpyStreamWriter(output, dim=vectors.shape[1]) as out:
        out.write(vectors)
    return EncodeResult(np.load(output, mmap_mode="r"), stats, encoder.name, Path(output))


def encode_on_ray(corpus: str | Path, output: str | Path, *, model: str | None = None, tuner=None, processes: int = 1,
                  backend: str = "torch", text_field: str = "text", id_field: str | None = None, batch_size: int = 64,
                  actors: int | None = None, address: str | None = None) -> dict[str, Any]:
    """Encode ``corpus`` on a Ray cluster (Ray Data actor pool; ``embtune[ray]``) into a folder of parquet shards;
    returns the summary (rows, shards, model, actors). See :mod:`embtune.encoders.ray_encode`."""
    from embtune.encoders.ray_encode import encode_with_ray

    if processes > 1:
        raise EmbtuneError("--nproc encodes on this machine; with --ray set the number of model copies with --actors")
    if tuner is not None:
        raise EmbtuneError("--ray encodes with a model; apply a tuner to the parquet vectors afterwards")
    return encode_with_ray(corpus, output, model=model or DEFAULT_MODEL, backend=backend, text_field=text_field,
                           id_field=id_field, batch_size=batch_size, actors=actors, address=address)


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


def evaluate(
    corpus: str | Path | list[str] | Corpus, *, model: str | Encoder | None = DEFAULT_MODEL,
    vectors: str | Path | np.ndarray | None = None, text_field: str = "text", label_field: str | None = None,
    use_labels: bool = True, test: str | Path | None = None, pairs: str | Path | None = None, k: int | None = None,
    seeds: int = 5, seed: int = 0, sample: int | None = EVALUATE_SAMPLE, batch_size: int = 64, device: str = "auto",
    backend: str = "torch", cache: bool | VectorCache = True, show_progress: bool | None = None,
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
    if vectors is not None and (test is not None or pairs is not None):
        raise EmbtuneError("--vectors cannot be combined with --test or --pairs (they need a model); give --model instead")
    data = load_corpus(corpus, text_field, label_field, use_labels, sample=None if vectors is not None else sample, seed=seed)
    notes = sample_note(data, seed) + ([f"labels from field {label_field or 'label'!r}: {data.n_labels} distinct"]
                                       if data.labels is not None else [])
    test_data = read_test(test, text_field, label_field, data.labels is not None) if test is not None else None
    vector_cache, encoder = open_cache(cache), None
    if vectors is None:
        encoder = open_model(model, data, device=device, cache=vector_cache, backend=backend)

    def encode_texts(texts: list[str], what: str = "texts") -> np.ndarray:
        return encode_shown(encoder, texts, what, cache=vector_cache, batch_size=batch_size, show_progress=show_progress)

    if encoder is None:
        corpus_vectors = load_vectors(vectors, len(data), data.path.name if data.path else "the corpus")
    else:
        corpus_vectors = encode_texts(data.texts, data.path.name if data.path else "texts")
    test_vectors = encode_texts(test_data.texts, Path(test).name) if test_data is not None else None
    pair_data = pair_vectors(read_pairs(pairs), encode_texts) if pairs is not None else None
    views = None
    if pair_data is None and encoder is not None and encoder.modality == "text":
        texts, base = (test_data.texts, test_vectors) if test_data is not None else (data.texts, corpus_vectors)
        views = dropout_view_pairs(texts, base, lambda t: encode_texts(t, "word-dropout views"), n=ALIGNMENT_SAMPLE,
                                   seed=seed)
    metrics = evaluate_vectors(corpus_vectors, labels=data.labels, test_vectors=test_vectors,
                               test_labels=test_data.labels if test_data is not None else None, pairs=pair_data,
                               views=views, k=k, seeds=seeds, seed=seed)
    model_name = encoder.name if encoder else Path(vectors).name if isinstance(vectors, (str, Path)) else "given vectors"
    return Evaluation(metrics=metrics, model=model_name, corpus=str(data.path) if data.path else "texts",
                      n_texts=len(data), n_labels=data.n_labels, seconds=time.perf_counter() - start, notes=notes,
                      unit=data.unit)


# -- tune: a head on frozen vectors ---------------------------------------------------------------------------------


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
    corpus: str | Path | list[str] | Corpus, *, method: str = "infonce", model: str | Encoder | None = DEFAULT_MODEL,
    output: str | Path | None = None, text_field: str = "text", label_field: str | None = None, use_labels: bool = True,
    test: str | Path | None = None, heldout_fraction: float = 0.2, hidden_dim: int | None = None,
    epochs: int | None = None, learning_rate: float | None = None, positives: str | None = None, k: int | None = None,
    seeds: int = 5, seed: int = 0, sample: int | None = TUNE_SAMPLE, batch_size: int = 64, device: str = "auto",
    cache: bool | VectorCache = True, show_progress: bool | None = None, write_report: bool = True,
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
    from embtune.tuners.compare import Split, fit_and_compare, hold_out
    from embtune.tuners.folder import base_model_meta, save_tuner_folder
    from embtune.tuners.methods import check_labels, check_method, make_tuner

    spec = check_method(method)
    if not 0 < heldout_fraction < 1:
        raise EmbtuneError(f"held-out fraction must be between 0 and 1 (got {heldout_fraction})")
    data = load_corpus(corpus, text_field, label_field, use_labels, sample=sample, seed=seed)
    check_labels(spec, data)
    tuner = make_tuner(method, hidden_dim=hidden_dim, epochs=epochs, learning_rate=learning_rate, positives=positives,
                       random_state=seed, device=device)
    vector_cache = open_cache(cache)
    encoder = encoder_for(model, data, device=device, cache=vector_cache)
    vectors = encode_shown(encoder, data.texts, data.path.name if data.path else "texts", cache=vector_cache,
                           batch_size=batch_size, show_progress=show_progress)
    if test is None:
        split = hold_out(vectors, data.labels, fraction=heldout_fraction, seed=seed, what=data.describe())
    else:
        test_data = read_test(test, text_field, label_field, data.labels is not None)
        held = encode_shown(encoder, test_data.texts, Path(test).name, cache=vector_cache, batch_size=batch_size,
                            show_progress=show_progress)
        split = Split(vectors, np.asarray(data.labels) if data.labels is not None else None, held,
                      np.asarray(test_data.labels) if test_data.labels is not None else None)
    before, after, fit_seconds = fit_and_compare(tuner, split, use_labels=spec.needs_labels, k=k, seeds=seeds, seed=seed)
    result = TuneResult(tuner=tuner, method=method, model=encoder.name, before=before, after=after,
                        n_fit=len(split.fit_x), n_heldout=len(split.held_x), fit_seconds=fit_seconds,
                        labels_used_for_fit=spec.needs_labels, sampled_from=data.sampled_from, unit=data.unit)
    if output is not None:
        result.output = save_tuner_folder(tuner, output, {
            **base_model_meta(encoder), "corpus": str(data.path) if data.path else None, "text_field": text_field,
            "seed": seed, **result.to_dict()})
        if write_report:
            base_spec = encoder.source if encoder.modality == "image" else model if isinstance(model, str) else None
            report(data, before=base_spec, after=output, output=Path(output) / "report.html", k=k, seeds=seeds,
                   seed=seed, device=device, cache=vector_cache)
    return result


# -- finetune: the whole model -------------------------------------------------------------------------------------


@writes_output_folder("finetune", inputs=("corpus", "model"))
def finetune(corpus: str | Path, *, objective: str = "augment", model: str | None = DEFAULT_MODEL, output: str | Path,
             overwrite: bool = False, write_report: bool = True, **options: Any) -> FinetuneResult:
    """Fine-tune the whole model on a corpus with ``objective`` and export it to ``output`` (a sentence-transformers
    folder with a model card). Label-free objectives read texts; ``mnrl`` reads pairs (text1, text2[, negative]);
    ``cosine``/``cosent`` read scored pairs. Image objectives (simclr, moco, byol, autoencoder, inpaint) read an image
    folder or index and train an image backbone (default EfficientNet-Lite0 at ``resolution`` pixels, 128), exported
    as safetensors + config.json. ``model="use-multilingual-v3"`` fine-tunes the Universal Sentence Encoder port;
    ``model="tfhub:PATH"`` a TensorFlow SavedModel (augment or autoencoder).

    ``options`` are those of :class:`embtune.training.run.RunOptions`: ``text_field``, ``label_field``, ``use_labels``,
    ``paraphrase_field``, ``sts``, ``epochs``, ``max_steps``, ``batch_size``, ``learning_rate``, ``grad_accum``,
    ``max_seq_length``, ``resolution``, ``model_options`` (the USE port's ``freeze_embeddings``, ``dropout``),
    ``eval_every``, ``checkpoint_every``, ``early_stopping``, ``patience``, ``max_minutes``, ``length_grouping``, ``resume``,
    ``objective_params``, ``collapse_guard``, ``seed``, ``device``, ``show_progress``.

    A held-out slice of the corpus (up to 1,000 texts, never trained on) is evaluated at the start and every
    ``eval_every`` steps; labels in the corpus and an ``sts`` pair file are used there to watch, never to train.
    Checkpoints go to ``output/checkpoints``; ``resume=True`` continues the last one exactly. A before/after report is
    written to ``output/report.html`` (``write_report=False`` skips it). ``collapse_guard=False`` lets a collapsing run
    go on (to measure what an objective does; the product default stops it).

    >>> result = embtune.finetune("tickets.jsonl", objective="augment", output="out/", max_steps=200)
    >>> result.after["silhouette"] - result.before["silhouette"]
    """
    from embtune.training import distributed
    from embtune.training.run import RunOptions, check_objective, check_output_folder, finetune_run

    run = RunOptions.from_kwargs(options)
    objective_cls = check_objective(objective, model)
    if objective == "distill":
        from embtune.tuners.folder import teacher_tuner

        run.objective_params["teacher"] = teacher_tuner(run.objective_params.get("teacher"), model, run.device)
    if distributed.launched():
        run.device = distributed.init_if_launched(run.device)
        run.show_progress = run.show_progress if distributed.is_main() else False
    output = Path(output)
    if distributed.is_main():
        check_output_folder(output, run.resume, overwrite)
    distributed.barrier()
    result, encoder = finetune_run(corpus, objective, objective_cls, model, output, run)
    if distributed.is_main() and write_report and objective_cls is not None and objective_cls.data in ("texts", "images"):
        report(corpus, before=encoder.source if objective_cls.data == "images" else model, after=output,
               output=output / "report.html", text_field=run.text_field, label_field=run.label_field,
               use_labels=run.use_labels, seed=run.seed, device=run.device)
    distributed.barrier()  # the other processes wait for the export (and report) before they exit
    return result


# -- report: before / after in pictures -----------------------------------------------------------------------------


def report(
    corpus: str | Path | Corpus, *, before: str | None = DEFAULT_MODEL, after: str | Path,
    output: str | Path = "report.html", text_field: str = "text", label_field: str | None = None,
    use_labels: bool = True, k: int | None = None, seeds: int = 5, seed: int = 0, projection: str = "pca",
    title: str | None = None, notes: list[str] | None = None, tables: list | None = None, device: str = "auto",
    cache: bool | VectorCache = True,
) -> ReportResult:
    """Write a before/after report (self-contained HTML, or Markdown when ``output`` ends in .md): the metric table
    with a verdict per metric, 2-D maps, per-cluster silhouettes, training curves when ``after`` came from the trainer
    or a tuner, and the nearest neighbours of sample texts before vs after.

    ``after`` is a model (name or folder) or a tuner folder from ``embtune tune -o`` (then ``before`` defaults to the
    tuner's base model).

    >>> embtune.report("tickets.jsonl", before="all-MiniLM-L6-v2", after="out/", output="report.html")
    """
    from embtune.tuners.folder import space_after

    output = prepare_output_file(output, inputs=[corpus if isinstance(corpus, (str, Path)) else None])
    for model_path in (before, after):
        if isinstance(model_path, (str, Path)) and Path(model_path).exists() and Path(model_path).resolve() == output.resolve():
            raise EmbtuneError(f"{output}: the report would replace the model {model_path}; name a .html or .md file")
    data = load_corpus(corpus, text_field, label_field, use_labels)
    vector_cache = open_cache(cache)
    after_name, after_fn, record = space_after(after, before if before != DEFAULT_MODEL else None, vector_cache, device)
    before_encoder = open_model(before, data, device=device, cache=vector_cache)
    texts, labels = report_sample(data, seed)
    before_side = Side(before_encoder.name, encode_items(before_encoder, texts, cache=vector_cache)[0])
    after_side = Side(after_name, np.asarray(after_fn(texts), dtype=np.float32))
    report_data = build_report(data, texts, labels, before_side, after_side, record=record, k=k, seeds=seeds, seed=seed,
                               projection=projection, title=title, notes=notes, tables=tables)
    return write_report(report_data, output)


# -- classify: pretrained embeddings in a downstream classifier --------------------------------------------------


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


@writes_output_folder("classify", inputs=("train", "test", "model"))
def classify(
    train: str | Path | Corpus, *, test: str | Path | Corpus | None = None, method: str = "textcnn",
    model: str = DEFAULT_MODEL, frozen: bool | None = None, output: str | Path | None = None, text_field: str = "text",
    label_field: str = "label", test_fraction: float = 0.2, seed: int = 0, device: str = "auto",
    options: dict[str, Any] | None = None, overwrite: bool = False,
) -> ClassifyResult:
    """Train a classifier on labelled texts and score it on ``test`` (or a stratified ``test_fraction`` held out).

    ``output`` (a folder) must be new, empty or embtune's own unless ``overwrite=True`` (see :mod:`embtune.outputs`).

    >>> result = embtune.classify("train.jsonl", test="test.jsonl", method="textcnn", output="clf/")
    >>> result.accuracy, result.macro_f1
    """
    from sklearn.metrics import accuracy_score, f1_score

    from embtune.evaluation.probes import holdout_split, top_confusions

    data = load_labelled(train, text_field, label_field)
    texts, labels = list(data.texts), np.asarray(data.labels)
    if test is not None:
        test_data = load_labelled(test, text_field, label_field)
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
    result = ClassifyResult(
        classifier=clf, method=method, n_train=len(texts), n_test=len(test_texts),
        accuracy=float(accuracy_score(test_labels, predicted)),
        macro_f1=float(f1_score(test_labels, predicted, average="macro", zero_division=0)),
        confusions=top_confusions(test_labels, predicted, names=np.unique(np.concatenate([labels, test_labels]))),
        fit_seconds=fit_seconds,
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
    texts = check_texts(corpus) if isinstance(corpus, list) else read_corpus(
        corpus, text_field=text_field, label_field=None).texts
    proba = clf.predict_proba(texts)
    if getattr(clf, "multi_label", False):
        return [{"text": t, "labels": [str(c) for c, p in zip(clf.classes_, row) if p >= 0.5]} for t, row in zip(texts, proba)]
    best = proba.argmax(axis=1)
    return [{"text": t, "label": str(clf.classes_[b]), "probability": round(float(row[b]), 4)}
            for t, b, row in zip(texts, best, proba)]
