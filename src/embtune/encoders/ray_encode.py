"""Encoding a sharded corpus on a Ray cluster with Ray Data (optional extra: ``pip install 'embtune[ray]'``).

Ray Data reads the shards (parquet, jsonl, csv or txt) in parallel, a pool of actors (each holding one loaded model)
maps batches of texts to vectors with ``map_batches``, and the result is written as parquet shards with the row id (or
the text) and a ``vector`` column. Ray does the scheduling, retries and scaling; embtune brings the encoder. On a
cluster, the model folder must be at the same path on every node (or on shared storage).

>>> encode_with_ray("shards/", "vectors/", model="all-MiniLM-L6-v2", actors=4)
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from embtune.data.readers import corpus_files, detect_format
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EmbtuneError("--ray needs Ray Data, which is not installed; run `pip install 'embtune[ray]'`") from None
    _reenable_our_loggers()
    return ray


def _reenable_our_loggers() -> None:
    # Ray Data configures logging with dictConfig on import, which disables every logger that already existed.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("embtune") and isinstance(logger, logging.Logger):
            logger.disabled = False


class _EncodeBatches:
    """One Ray actor: loads the model once, then turns batches of rows into vectors."""

    def __init__(self, model: str, backend: str, text_field: str, id_field: str | None, batch_size: int,
                 calibration: list[str] | None = None):
        from embtune.encoders import load_encoder

        self.encoder = load_encoder(model, backend=backend, device="auto", calibration=calibration)
        self.text_field, self.id_field, self.batch_size = text_field, id_field, batch_size

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        texts = [str(t) for t in batch[self.text_field]]
        vectors = self.encoder.encode(texts, batch_size=self.batch_size)
        key = self.id_field or self.text_field
        # A plain fixed-size list column (not Ray's tensor extension type): readable by pandas, polars, duckdb, numpy.
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), vectors.shape[1])
        return pa.table({key: pa.array(np.asarray(batch[key]).tolist()), "vector": column})


def _read(ray, files: list[Path], text_field: str, id_field: str | None):
    formats = {detect_format(f) for f in files}
    if len(formats) > 1:
        raise EmbtuneError(f"--ray reads shards of one format; this corpus mixes {', '.join(sorted(formats))}")
    fmt = formats.pop()
    paths = [str(f) for f in files]
    columns = [text_field] + ([id_field] if id_field else [])
    if fmt == "parquet":
        return ray.data.read_parquet(paths, columns=columns)
    if fmt == "jsonl":
        return ray.data.read_json(paths, lines=True).select_columns(columns)
    if fmt in ("csv", "tsv"):
        from pyarrow import csv

        options = {"parse_options": csv.ParseOptions(delimiter="\t")} if fmt == "tsv" else {}
        return ray.data.read_csv(paths, **options).select_columns(columns)
    if text_field != "text" or id_field:
        raise EmbtuneError("a .txt corpus has one text per line and no fields; drop --text-field / --id-field")
    return ray.data.read_text(paths)


def encode_with_ray(
    corpus: str | Path,
    output: str | Path,
    *,
    model: str = "all-MiniLM-L6-v2",
    backend: str = "torch",
    text_field: str = "text",
    id_field: str | None = None,
    batch_size: int = 64,
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
    address: str | None = None,
) -> dict[str, Any]:
    """Encode ``corpus`` (a file or a folder of shards) with a Ray actor pool; write parquet shards to ``output``.

    ``address`` joins a running cluster ("auto", or ``ray://host:10001``); without it a local Ray instance is started.
    ``actors`` is the pool size (default: one per ``cpus_per_actor`` CPUs of the cluster, at least one). Each output row
    holds ``id_field`` (or the text itself) and ``vector``; rows with an empty text are dropped. Returns a summary.
    """
    from embtune.encoders import CALIBRATED_BACKENDS, resolve_model

    ray = _require_ray()
    files = corpus_files(corpus)
    output = Path(output)
    if output.suffix.lower() == ".npy":
        raise EmbtuneError(f"--ray writes a folder of parquet shards; give -o a folder name, not {output.name}")
    from embtune.outputs import check_not_input

    check_not_input(output, [corpus, model])
    if output.exists() and any(output.iterdir()):
        raise EmbtuneError(f"{output} is not empty; give a new folder for the parquet shards")
    resolved = resolve_model(model)
    calibration = None
    if backend in CALIBRATED_BACKENDS:  # every actor calibrates on the same sample, so all vectors match
        from embtune.data.load import first_texts
        from embtune.encoders.openvino import spread_sample

        calibration = spread_sample(first_texts(files[0], text_field))
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if actors is None:
            actors = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_actor))
        dataset = _read(ray, files, text_field, id_field)
        with warnings.catch_warnings():  # Ray suggests expressions, which cannot say "blank after strip"
            warnings.filterwarnings("ignore", message="Use 'expr' instead of 'fn'")
            dataset = dataset.filter(lambda row: bool(row[text_field]) and bool(str(row[text_field]).strip()))
        vectors = dataset.map_batches(
            _EncodeBatches,
            fn_constructor_kwargs={"model": str(resolved.path), "backend": backend, "text_field": text_field,
                                   "id_field": id_field, "batch_size": batch_size, "calibration": calibration},
            batch_size=max(batch_size * 8, 256), batch_format="numpy", concurrency=actors, num_cpus=cpus_per_actor,
        )
        vectors.write_parquet(str(output))
    finally:
        if started_here:
            ray.shutdown()
    shards = sorted(output.glob("*.parquet"))
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(s).metadata.num_rows for s in shards)
    return {"output": str(output), "model": resolved.name, "rows": rows, "shards": len(shards), "actors": actors}
