"""Row-level readers for the file formats embtune accepts: .txt, .csv, .tsv, .jsonl and .parquet, one file or a folder of
shards (e.g. ``part-00000.parquet``, ``part-00001.parquet`` ...), read in name order as one corpus.

Every reader streams: it yields ``(location, row)`` one row at a time, so memory does not grow with the file.
``location`` is the 1-based line number (row number for parquet) used in error messages.
Errors name the file, the line and what was expected.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embtune.errors import InputError

log = logging.getLogger(__name__)

FORMATS = {
    ".txt": "txt",
    ".text": "txt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# csv's default limit (128 KiB) is below what a long document can hold.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its suffix: ``txt``, ``csv``, ``tsv``, ``jsonl`` or ``parquet``."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(set(FORMATS)))
        raise InputError(path, f"unsupported file type {path.suffix or '(no suffix)'!r}; use one of {known}")
    return fmt


def shard_files(folder: str | Path) -> list[Path]:
    """The corpus files under ``folder`` in name order: those of its most common format; hidden and ``_`` files ignored.

    A folder of shards is read as one corpus, shard after shard (what Spark, Dask or ``datasets`` write). Files of another
    format (a README.txt beside part-*.jsonl) are skipped and listed in one warning; when two formats are equally common
    the folder is refused, since either choice could be wrong. A quoted pattern (``'shards/part-*.jsonl'``) picks files
    explicitly.
    """
    folder = Path(folder)
    visible = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )
    by_format: dict[str, list[Path]] = {}
    for p in visible:
        if p.suffix.lower() in FORMATS:
            by_format.setdefault(FORMATS[p.suffix.lower()], []).append(p)
    if not by_format:
        return []
    counts = sorted(((len(files), fmt) for fmt, files in by_format.items()), reverse=True)
    if len(counts) > 1 and counts[0][0] == counts[1][0]:
        tied = " and ".join(f"{n} {fmt}" for n, fmt in counts if n == counts[0][0])
        example = folder / ("*" + by_format[counts[0][1]][0].suffix)
        raise InputError(folder, f"holds {tied} files, equally many, so which are the shards is unclear; pass a quoted "
                         f"pattern instead of the folder, e.g. '{example}'")
    chosen = by_format[counts[0][1]]
    kept = set(chosen)
    skipped = [p for p in visible if p not in kept]
    if skipped and folder.resolve() not in _WARNED_FOLDERS:
        _WARNED_FOLDERS.add(folder.resolve())
        names = ", ".join(str(p.relative_to(folder)) for p in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log.warning("%s: reading its %d %s shard(s); skipped %d other file(s): %s%s (pass a quoted pattern such as "
                    "'%s' to choose the files yourself)", folder, len(chosen), counts[0][1], len(skipped), names, more,
                    folder / ("*" + chosen[0].suffix))
    return chosen


_WARNED_FOLDERS: set[Path] = set()  # each folder's skipped files are listed once per process


def has_pattern(path: str | Path) -> bool:
    """True for a path that is a glob pattern (``*``, ``?`` or ``[``) and names no existing file."""
    text = str(path)
    return any(c in text for c in "*?[") and not Path(text).exists()


def pattern_files(pattern: str | Path) -> list[Path]:
    """The corpus files a quoted pattern names, in name order (``**`` matches sub-folders)."""
    files = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file())
    if not files:
        raise InputError(pattern, "no files match this pattern")
    for f in files:
        detect_format(f)
    return files


def corpus_files(path: str | Path) -> list[Path]:
    """``[path]`` for a corpus file, the shards in name order for a folder of them or a pattern; clear errors otherwise."""
    path = Path(path)
    if has_pattern(path):
        files = pattern_files(path)
        return [check_readable(f) for f in files if f.stat().st_size > 0] or [check_readable(files[0])]
    if path.is_dir():
        files = shard_files(path)
        if not files:
            known = ", ".join(sorted(set(FORMATS)))
            raise InputError(path, f"is a folder with no corpus files in it ({known}); pass a file or a folder of shards")
        return [check_readable(f) for f in files if f.stat().st_size > 0] or [check_readable(files[0])]
    return [check_readable(path)]


def check_readable(path: str | Path) -> Path:
    """Fail with a clear message when ``path`` does not exist, is a folder, or is empty."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a file (.txt, .csv, .tsv, .jsonl or .parquet)")
    if path.stat().st_size == 0:
        raise InputError(path, "is empty (0 bytes): nothing to read")
    return path


def unit_of(fmt: str) -> str:
    """What a location counts in error messages: lines for text formats, rows for parquet."""
    return "row" if fmt == "parquet" else "line"


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decoded lines with their 1-based numbers; strict UTF-8 with the line named on bad bytes; BOM dropped."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    path,
                    f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                    "re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
                    line=number,
                ) from None
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield number, line


def _iter_txt(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in iter_lines(path):
        yield number, {"text": line.rstrip("\r\n")}


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                path,
                f"malformed JSON ({e.msg} at column {e.colno}); each line must be one JSON object, "
                'like {"text": "...", "label": "..."}',
                line=number,
            ) from None
        if not isinstance(row, dict):
            raise InputError(
                path,
                f"expected a JSON object like {{\"text\": \"...\"}}, got a {type(row).__name__}",
                line=number,
            )
        if "\\u" in line:  # only a \uD800-\uDFFF escape can smuggle in text that is not Unicode
            _check_unicode(path, number, row)
        yield number, row


def _check_unicode(path: Path, number: int, row: dict[str, Any]) -> None:
    """Refuse a lone surrogate escape (e.g. ``"\\ud800"``): JSON allows it, but it is no character and no model can read it."""
    for key, value in row.items():
        for item in (value if isinstance(value, list) else [value]):
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as e:
                    code = ord(item[e.start])
                    raise InputError(path, f"field {key!r} holds a lone surrogate escape (\\u{code:04x}), which is not a "
                                     "character; fix or remove that escape", line=number) from None


class _LineTracker:
    """Feeds csv.reader decoded lines while remembering the physical line each record started on."""

    def __init__(self, path: Path):
        self._lines = iter_lines(path)
        self.number = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        self.number, line = next(self._lines)
        return line


def _iter_delimited(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    lines = _LineTracker(path)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise InputError(path, f"unreadable header ({e})", line=1) from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputError(path, f"header repeats column(s) {dupes}; column names must be unique", line=1)
    while True:
        start = lines.number + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(path, f"unreadable {'TSV' if delimiter == chr(9) else 'CSV'} record ({e})", line=start) from None
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) > len(header):
            raise InputError(
                path,
                f"{len(record)} fields but the header has {len(header)} "
                "(an unquoted delimiter or a stray quote in a field?)",
                line=start,
            )
        yield start, dict(zip(header, record))


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise InputError(path, f"not a readable parquet file ({e})") from None
    number = 0
    batches = parquet.iter_batches(batch_size=8192)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:  # a damaged data page: pyarrow raises OSError or ArrowInvalid without the file's name
            raise InputError(path, f"damaged parquet data after row {number} ({type(e).__name__}: {e}); re-export the "
                             "file", unit="row") from None
        for row in batch.to_pylist():
            number += 1
            yield number, row


def parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as e:
        raise InputError(path, f"not a readable parquet file ({e})") from None


def iter_rows(path: str | Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_or_row_number, row_dict)`` for every non-blank row of ``path``.

    A .txt row is ``{"text": line}``. Blank lines are not rows (jsonl, csv); in .txt they are rows with an empty
    text, so callers count them as skipped.

    >>> for line, row in iter_rows("corpus.jsonl"):
    ...     print(line, row["text"])
    """
    path = check_readable(path)
    fmt = fmt or detect_format(path)
    if fmt == "txt":
        return _iter_txt(path)
    if fmt == "jsonl":
        return _iter_jsonl(path)
    if fmt == "csv":
        return _iter_delimited(path, ",")
    if fmt == "tsv":
        return _iter_delimited(path, "\t")
    if fmt == "parquet":
        return _iter_parquet(path)
    raise ValueError(f"unknown format {fmt!r}")


def count_rows_estimate(path: str | Path) -> int:
    """A cheap upper estimate of the number of rows, for progress bars: newlines for text formats, metadata for parquet."""
    path = Path(path)
    if path.is_dir() or has_pattern(path):
        return sum(count_rows_estimate(f) for f in corpus_files(path))
    fmt = detect_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    count = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        count += 1
    return count - (1 if fmt in ("csv", "tsv") else 0)
