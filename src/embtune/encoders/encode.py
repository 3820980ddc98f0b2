"""Encoding through the vector cache, in memory or streamed from a corpus file (or folder of shards) to a .npy file.

Each item is looked up by content hash; only the misses reach the model, in chunks that are committed to the cache as they
finish, so a repeated run does no model work at all. A streamed encode also commits its output chunk by chunk, so an
interrupted one resumes where it stopped even without the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embtune.data.corpus import ReadStats, iter_text_chunks
from embtune.data.readers import count_rows_estimate
from embtune.data.resumable import ResumableVectorWriter, corpus_identity
from embtune.data.vectors import l2_normalize
from embtune.encoders.base import Encoder
from embtune.encoders.cache import VectorCache, text_key
from embtune.errors import EmbtuneError
from embtune.progress import ProgressCallback, task_progress

log = logging.getLogger(__name__)

_COMMIT_EVERY = 1024  # texts encoded between cache commits: the most an interruption can lose


@dataclass
class EncodeStats:
    """What an encode did: how many items, how many came from the cache, how long it took."""

    items: int = 0
    from_cache: int = 0
    encoded: int = 0
    seconds: float = 0.0
    skipped_empty: int = 0
    dim: int = 0
    extra: dict = field(default_factory=dict)

    def add(self, other: EncodeStats) -> None:
        self.items += other.items
        self.from_cache += other.from_cache
        self.encoded += other.encoded
        self.dim = other.dim or self.dim


def encode_items(
    encoder: Encoder,
    items: Sequence,
    *,
    cache: VectorCache | None = None,
    batch_size: int = 64,
    normalize: bool = True,
    on_progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, EncodeStats]:
    """Vectors for ``items`` (float32, one row per item, duplicates included), using and filling ``cache``.

    >>> vectors, stats = encode_items(encoder, ["a text", "another"], cache=VectorCache())
    """
    start = time.perf_counter()
    items = list(items)
    stats = EncodeStats(items=len(items))
    key_of = getattr(encoder, "item_key", text_key)  # images key on path + size + mtime, texts on their content
    keys = [key_of(item) for item in items]
    first_index: dict[bytes, int] = {}
    occurrences: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        first_index.setdefault(key, i)
        occurrences[key] = occurrences.get(key, 0) + 1
    found = cache.get_many(encoder.fingerprint, list(first_index)) if cache is not None else {}
    stats.from_cache = sum(1 for key in keys if key in found)
    if on_progress is not None and stats.from_cache:
        on_progress(stats.from_cache)
    # Longest first, like sentence-transformers' own sort, so each committed chunk pads to similar lengths.
    missing = sorted((key for key in first_index if key not in found), key=lambda k: -len(items[first_index[k]]))
    for begin in range(0, len(missing), _COMMIT_EVERY):
        chunk = missing[begin : begin + _COMMIT_EVERY]
        vectors = encoder.encode([items[first_index[k]] for k in chunk], batch_size=batch_size, normalize=False)
        if cache is not None:
            cache.put_many(encoder.fingerprint, encoder.name, chunk, vectors)
        found.update(zip(chunk, vectors))
        stats.encoded += len(chunk)
        if on_progress is not None:
            on_progress(sum(occurrences[k] for k in chunk))  # duplicates of a text ride along with it
    if items:
        out = np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
    else:
        out = np.zeros((0, encoder.dim), dtype=np.float32)
    stats.dim = out.shape[1]
    stats.seconds = time.perf_counter() - start
    return (l2_normalize(out) if normalize else out), stats


def encode_shown(encoder: Encoder, items: Sequence, what: str, *, cache: VectorCache | None = None,
                 batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
    """:func:`encode_items` (normalised) behind a progress bar named ``encoding {what}``; the vectors only."""
    with task_progress(f"encoding {what}", len(items), show_progress) as advance:
        vectors, _ = encode_items(encoder, items, cache=cache, batch_size=batch_size, on_progress=advance)
    return vectors


def encode_file(
    encoder: Encoder,
    corpus: str | Path,
    output: str | Path,
    *,
    text_field: str = "text",
    id_field: str | None = None,
    cache: VectorCache | None = None,
    batch_size: int = 64,
    normalize: bool = True,
    chunk_size: int = 8192,
    on_progress: ProgressCallback | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    transform_id: str | None = None,
) -> EncodeStats:
    """Stream ``corpus`` (a file or a folder of shards) through the encoder into ``output`` (.npy) and its row ids.

    Memory stays flat: at most ``chunk_size`` texts and their vectors are held at once. Each finished chunk is committed
    to disk, so a killed run started again with the same corpus, model and settings skips the chunks already written
    (see :mod:`embtune.data.resumable`). The ids (``id_field``'s values, else 1-based row numbers) go to
    ``<output stem>.ids.jsonl``, one per vector, so rows skipped for an empty text cannot shift the join.
    ``transform`` (e.g. a fitted tuner's) is applied to each chunk of normalised vectors before ``normalize`` and writing;
    give ``transform_id`` (what identifies it) so such a run can resume too.
    """
    start = time.perf_counter()
    stats = EncodeStats()
    read = ReadStats()
    identity = {
        "corpus": corpus_identity(corpus), "model": encoder.fingerprint, "text_field": text_field, "id_field": id_field,
        "chunk_size": chunk_size, "normalize": normalize,
        "transform": None if transform is None else (transform_id or f"unidentified-{time.time_ns()}"),
    }
    writer = ResumableVectorWriter(output, identity=identity, expected_rows=estimate_rows(corpus))
    stats.extra["resumed_rows"] = writer.rows
    try:
        chunks = iter_text_chunks(corpus, text_field=text_field, chunk_size=chunk_size, stats=read, id_field=id_field or "#")
        for index, (texts, ids) in enumerate(chunks):
            if index < writer.chunks_done:
                stats.items += len(texts)
                if on_progress is not None:
                    on_progress(len(texts))
                continue
            vectors, part = encode_items(
                encoder, texts, cache=cache, batch_size=batch_size, normalize=normalize or transform is not None,
                on_progress=on_progress,
            )
            if transform is not None:
                vectors = np.asarray(transform(vectors), dtype=np.float32)
                vectors = l2_normalize(vectors) if normalize else vectors
            writer.write(vectors, ids)
            stats.add(part)
        writer.close()
        stats.extra["ids"] = str(writer.ids_output)
    except EmbtuneError:
        writer.discard()  # the input is bad: nothing in the work folder is worth resuming
        raise
    except BaseException:
        writer.release()  # interrupted, or the disk is full: keep the committed chunks for a resume
        raise
    stats.dim = writer.dim or 0
    stats.skipped_empty = read.skipped_empty
    stats.seconds = time.perf_counter() - start
    return stats


def estimate_rows(corpus: str | Path) -> int | None:
    try:
        return count_rows_estimate(corpus)
    except Exception:  # only a progress-bar estimate; the real read reports real problems
        return None
