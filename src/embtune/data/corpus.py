"""Text corpora: texts (and optional labels) read from .txt, .csv, .tsv, .jsonl or .parquet.

Rows whose text is empty or whitespace-only are skipped and counted (the count is logged). A row without the text field,
or with a text that is not a string, stops the read with the file, line and field named.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embtune.data.readers import check_readable, detect_format, iter_rows, parquet_columns, unit_of
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
    hint = f"; pass {option} {strings[0]}" if strings else ""
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
    """Stream ``(text, label)`` from a corpus file; ``label`` is None when ``label_field`` is None.

    With ``labels_required`` every kept row must have ``label_field``; otherwise a missing label is yielded as None.
    Empty texts are skipped and counted in ``stats``.

    >>> for text, _ in iter_records("corpus.jsonl"):
    ...     ...
    """
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
    stats = stats if stats is not None else ReadStats()
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
        yield text, label


def _log_skipped(path: Path, stats: ReadStats, unit: str) -> None:
    if stats.skipped_empty:
        where = ", ".join(map(str, stats.first_skipped)) + (", ..." if stats.skipped_empty > len(stats.first_skipped) else "")
        log.info("%s: skipped %d row(s) with an empty text (%s %s)", path.name, stats.skipped_empty, unit + "s", where)


def _label_string(label: Any) -> str:
    # 1 and 1.0 and "1" are the same class to a user; a float label that is a whole number is an int.
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label).strip() if isinstance(label, str) else str(label)


def read_corpus(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str | None = "label",
    require_labels: bool = False,
) -> Corpus:
    """Read a whole corpus into memory.

    Labels come from ``label_field`` when every row has one; with ``require_labels`` a row without a label is an
    error, otherwise a corpus with missing labels is read without labels (and says so in the log).

    >>> corpus = read_corpus("banking.jsonl", label_field="intent")
    >>> len(corpus.texts), corpus.n_labels
    """
    path = check_readable(path)
    stats = ReadStats()
    texts: list[str] = []
    labels: list[Any] = []
    records = iter_records(
        path, text_field=text_field, label_field=label_field, labels_required=require_labels, stats=stats
    )
    for text, label in records:
        texts.append(text)
        labels.append(label)
    if not texts:
        if stats.rows == 0:
            raise InputError(path, "has no rows: nothing to read")
        raise InputError(path, f"all {stats.rows} row(s) have an empty {text_field!r}: nothing to read")
    _log_skipped(path, stats, unit_of(detect_format(path)))
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
    )


def iter_text_chunks(
    path: str | Path, *, text_field: str = "text", chunk_size: int = 4096, stats: ReadStats | None = None
) -> Iterator[list[str]]:
    """Stream the texts of a corpus file in lists of at most ``chunk_size``; memory stays flat for any file size."""
    stats = stats if stats is not None else ReadStats()
    chunk: list[str] = []
    for text, _ in iter_records(path, text_field=text_field, stats=stats):
        chunk.append(text)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    path = Path(path)
    if stats.rows == 0:
        raise InputError(path, "has no rows: nothing to read")
    if stats.rows == stats.skipped_empty:
        raise InputError(path, f"all {stats.rows} row(s) have an empty {text_field!r}: nothing to read")
    _log_skipped(path, stats, unit_of(detect_format(path)))


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
