"""Text corpora: texts (and optional labels) read from .txt, .csv, .tsv, .jsonl or .parquet.

Rows whose text is empty or whitespace-only are skipped and counted (the count is logged). A row without the text field,
or with a text that is not a string, stops the read with the file, line and field named.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embtune.data.readers import check_readable, corpus_files, detect_format, iter_rows, parquet_columns, unit_of
from embtune.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class Corpus:
    """Texts and, when the file has them, one label per text (as strings).

    Image corpora use the same container: ``texts`` then holds absolute image paths and ``unit`` is "images".
    """

    texts: list[str]
    labels: list[str] | None = None
    path: Path | None = None
    skipped_empty: int = 0
    unit: str = "texts"
    sampled_from: int | None = None  # the corpus size when ``texts`` is a fixed-seed sample of it

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_labels(self) -> int:
        return len(set(self.labels)) if self.labels is not None else 0

    def describe(self) -> str:
        where = self.path.name if self.path else "in-memory corpus"
        labels = f", {self.n_labels} labels" if self.labels is not None else ", no labels"
        return f"{where}: {len(self)} {self.unit}{labels}"


@dataclass
class ReadStats:
    """What a streaming read saw; filled in as the iterator advances."""

    rows: int = 0
    skipped_empty: int = 0
    first_skipped: list[int] = field(default_factory=list)


def _field_hint(row: dict[str, Any], wanted: str, option: str) -> str:
    fields = ", ".join(repr(k) for k in row) or "none"
    strings = [k for k, v in row.items() if isinstance(v, str) and k is not None]
    hint = f"; pass {option} {shlex.quote(strings[0])}" if strings else ""
    return f"no field {wanted!r} (this row has: {fields}){hint}"


def _check_columns(path: Path, fmt: str, text_field: str) -> None:
    """For columnar formats, a missing text column is reported once, before any row is read."""
    if fmt == "parquet":
        columns = parquet_columns(path)
        if text_field not in columns:
            raise InputError(path, f"no column {text_field!r} (columns: {', '.join(map(repr, columns))}); pass --text-field NAME")


def iter_records(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str | None = None,
    labels_required: bool = True,
    stats: ReadStats | None = None,
) -> Iterator[tuple[str, Any]]:
    """Stream ``(text, label)`` from a corpus file or a folder of shards; ``label`` is None when ``label_field`` is None.

    With ``labels_required`` every kept row must have ``label_field``; otherwise a missing label is yielded as None.
    Empty texts are skipped and counted in ``stats``.

    >>> for text, _ in iter_records("corpus.jsonl"):
    ...     ...
    """
    stats = stats if stats is not None else ReadStats()
    for file in corpus_files(path):
        yield from _iter_file_records(file, text_field, label_field, labels_required, stats)


def _iter_file_records(
    path: Path, text_field: str, label_field: str | None, labels_required: bool, stats: ReadStats
) -> Iterator[tuple[str, Any]]:
    path = check_readable(path)
    fmt = detect_format(path)
    unit = unit_of(fmt)
    if fmt == "txt" and text_field != "text":
        raise InputError(path, f"a .txt corpus has one text per line and no fields; drop --text-field {text_field}")
    if fmt == "txt" and label_field is not None:
        if labels_required:
            raise InputError(path, "a .txt corpus has no labels; use .jsonl, .csv or .parquet with a label field")
        label_field = None
    _check_columns(path, fmt, text_field)
    kinds: dict[str, tuple[str, int]] = {}  # label as a string -> (number or string, first line), to say when they merge
    merge_told = False
    for number, row in iter_rows(path, fmt):
        stats.rows += 1
        if text_field not in row:
            raise InputError(path, _field_hint(row, text_field, "--text-field"), line=number, unit=unit)
        text = row[text_field]
        if text is not None and not isinstance(text, str):
            raise InputError(
                path, f"field {text_field!r} is a {type(text).__name__}, expected a string", line=number, unit=unit
            )
        if text is None or not text.strip():
            stats.skipped_empty += 1
            if len(stats.first_skipped) < 5:
                stats.first_skipped.append(number)
            continue
        label = None
        if label_field is not None:
            label = row.get(label_field)
            if isinstance(label, str) and not label.strip():
                label = None
            if label is None and labels_required:
                what = "no field" if label_field not in row else "an empty field"
                raise InputError(
                    path,
                    f"{what} {label_field!r} but labels were asked for; give every row a label or drop --labels",
                    line=number,
                    unit=unit,
                )
            if isinstance(label, (dict, list)):
                raise InputError(
                    path,
                    f"field {label_field!r} is a {type(label).__name__}, expected a string or number",
                    line=number,
                    unit=unit,
                )
            if label is not None and not merge_told:
                merge_told = _told_label_merge(path, unit, kinds, label, number)
        yield text, label


def _told_label_merge(path: Path, unit: str, kinds: dict[str, tuple[str, int]], label: Any, number: int) -> bool:
    """Warn when the same class is written both as a number and as a string (1 and "1"); True once it has warned."""
    kind = "string" if isinstance(label, str) else "number"
    key = _label_string(label)
    first_kind, first_number = kinds.setdefault(key, (kind, number))
    if first_kind == kind:
        return False
    log.warning("%s: label %s is a %s on %s %d and a %s on %s %d; they are read as one class %r (give the column "
                "one type if they are different classes)", path.name, key, first_kind, unit, first_number, kind, unit,
                number, key)
    return True


def _log_skipped(path: Path, stats: ReadStats, unit: str) -> None:
    if stats.skipped_empty:
        where = ", ".join(map(str, stats.first_skipped)) + (", ..." if stats.skipped_empty > len(stats.first_skipped) else "")
        log.info("%s: skipped %d row(s) with an empty text (%s %s)", path.name, stats.skipped_empty, unit + "s", where)


def _label_string(label: Any) -> str:
    # 1 and 1.0 and "1" are the same class to a user; a float label that is a whole number is an int.
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label).strip() if isinstance(label, str) else str(label)


def reservoir_sample(items: Iterable[Any], size: int, seed: int = 0) -> tuple[list[Any], int]:
    """A uniform random sample of ``size`` items from a stream of unknown length, in stream order, and the stream length.

    Memory is O(size) whatever the stream's length (Li's "Algorithm L": it draws how many items to skip, so the cost is
    one random number per kept item, not per item read). The same seed gives the same sample.

    >>> sample, total = reservoir_sample(iter(range(1_000_000)), 10, seed=0)
    """
    rng = np.random.default_rng(seed)
    kept: list[tuple[int, Any]] = []
    w = np.exp(np.log(rng.random()) / size)
    take = size + int(np.floor(np.log(rng.random()) / np.log1p(-w)))  # index of the next item to keep
    total = 0
    for index, item in enumerate(items):
        total = index + 1
        if index < size:
            kept.append((index, item))
        elif index == take:
            kept[int(rng.integers(size))] = (index, item)
            w *= np.exp(np.log(rng.random()) / size)
            take += 1 + int(np.floor(np.log(rng.random()) / np.log1p(-w)))
    kept.sort(key=lambda pair: pair[0])
    return [item for _, item in kept], total


def _corpus_unit(path: Path) -> str:
    return "line" if path.is_dir() else unit_of(detect_format(path))


def read_corpus(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str | None = "label",
    require_labels: bool = False,
    sample: int | None = None,
    seed: int = 0,
) -> Corpus:
    """Read a corpus (a file or a folder of shards) into memory, or a fixed-seed sample of it.

    Labels come from ``label_field`` when every row has one; with ``require_labels`` a row without a label is an
    error, otherwise a corpus with missing labels is read without labels (and says so in the log). With ``sample`` and a
    corpus of more texts than that, a uniform sample of ``sample`` texts (same ``seed``, same sample) is kept, read in
    one streaming pass with memory bounded by the sample; ``Corpus.sampled_from`` then holds the corpus size.

    >>> corpus = read_corpus("banking.jsonl", label_field="intent")
    >>> len(corpus.texts), corpus.n_labels
    """
    path = Path(path)
    corpus_files(path)  # a missing, empty or unreadable corpus fails here, before anything else
    stats = ReadStats()
    records = iter_records(
        path, text_field=text_field, label_field=label_field, labels_required=require_labels, stats=stats
    )
    if sample is not None and sample > 0:
        kept, total = reservoir_sample(records, sample, seed)
    else:
        kept = list(records)
        total = len(kept)
    texts = [text for text, _ in kept]
    labels = [label for _, label in kept]
    if not texts:
        if stats.rows == 0:
            raise InputError(path, "has no rows: nothing to read")
        raise InputError(path, f"all {stats.rows} row(s) have an empty {text_field!r}: nothing to read")
    _log_skipped(path, stats, _corpus_unit(path))
    present = sum(label is not None for label in labels)
    if 0 < present < len(labels):
        first = next(i for i, label in enumerate(labels) if label is None)
        log.warning(
            "%s: field %r is missing or empty for %d of %d texts (first: text %d); reading without labels",
            path.name,
            label_field,
            len(labels) - present,
            len(labels),
            first + 1,
        )
    return Corpus(
        texts=texts,
        labels=[_label_string(label) for label in labels] if present == len(labels) else None,
        path=path,
        skipped_empty=stats.skipped_empty,
        sampled_from=total if total > len(texts) else None,
    )


def iter_text_chunks(
    path: str | Path, *, text_field: str = "text", chunk_size: int = 4096, stats: ReadStats | None = None,
    id_field: str | None = None,
) -> Iterator[list[str]] | Iterator[tuple[list[str], list[Any]]]:
    """Stream the texts of a corpus file or folder of shards in lists of at most ``chunk_size``; memory stays flat.

    With ``id_field`` each chunk comes as ``(texts, ids)``; ``id_field="#"`` gives each text's row number (1-based,
    counting every row of the corpus, skipped empty ones included), so vectors can be joined back to their rows.
    """
    stats = stats if stats is not None else ReadStats()
    chunk: list[str] = []
    ids: list[Any] = []
    wanted = None if id_field in (None, "#") else id_field
    for text, row_id in iter_records(path, text_field=text_field, label_field=wanted, labels_required=False, stats=stats):
        chunk.append(text)
        if wanted is not None and row_id is None:
            raise InputError(
                path, f"row {stats.rows} of the corpus has no {id_field!r} field (or an empty one); "
                "give every row an id, or drop --id-field to number the rows"
            )
        if id_field is not None:
            ids.append(stats.rows if id_field == "#" else row_id)
        if len(chunk) >= chunk_size:
            yield (chunk, ids) if id_field is not None else chunk
            chunk, ids = [], []
    if chunk:
        yield (chunk, ids) if id_field is not None else chunk
    path = Path(path)
    if stats.rows == 0:
        raise InputError(path, "has no rows: nothing to read")
    if stats.rows == stats.skipped_empty:
        raise InputError(path, f"all {stats.rows} row(s) have an empty {text_field!r}: nothing to read")
    _log_skipped(path, stats, _corpus_unit(path))


def read_paraphrase_corpus(
    path: str | Path, *, text_field: str = "text", paraphrase_field: str = "paraphrases"
) -> tuple[Corpus, list[list[str]]]:
    """Texts with user-supplied paraphrases or back-translations (a string or a list of strings per row).

    Rows without paraphrases get an empty list (their second view is then an augmentation).
    """
    path = check_readable(path)
    fmt = detect_format(path)
    unit = unit_of(fmt)
    if fmt == "txt":
        raise InputError(path, "paraphrases need a field per row; use .jsonl, .csv or .parquet")
    texts: list[str] = []
    paraphrases: list[list[str]] = []
    skipped = 0
    for number, row in iter_rows(path, fmt):
        text = row.get(text_field)
        if text_field not in row:
            raise InputError(path, _field_hint(row, text_field, "--text-field"), line=number, unit=unit)
        if not isinstance(text, str) or not text.strip():
            skipped += 1
            continue
        value = row.get(paraphrase_field)
        if value is None or value == "":
            options = []
        elif isinstance(value, str):
            options = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            options = [v for v in value if v.strip()]
        else:
            raise InputError(
                path, f"field {paraphrase_field!r} must be a string or a list of strings", line=number, unit=unit
            )
        texts.append(text)
        paraphrases.append(options)
    if not texts:
        raise InputError(path, "has no rows with a text: nothing to read")
    if not any(paraphrases):
        raise InputError(path, f"no row has a {paraphrase_field!r} field; check --paraphrase-field")
    return Corpus(texts=texts, path=path, skipped_empty=skipped), paraphrases
