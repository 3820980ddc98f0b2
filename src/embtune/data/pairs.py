"""Pair files: two texts per row and, optionally, a similarity score or a 0/1 label.

Fields default to ``text1``, ``text2`` and ``score`` (any range, e.g. STS-B's 0-5) or ``label`` (1 = similar, 0 = not).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embtune.data.readers import check_readable, detect_format, iter_rows, unit_of
from embtune.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class Pairs:
    """Parallel lists of texts with per-pair ``scores`` (float) or ``labels`` (0/1), or neither."""

    text1: list[str]
    text2: list[str]
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None
    path: Path | None = None
    negatives: list[str] | None = None  # optional third text per pair (a hard negative), from field "negative"

    def __len__(self) -> int:
        return len(self.text1)

    def positive_mask(self) -> np.ndarray | None:
        """Which pairs count as "similar": label 1, or a score in the top fifth of the score range."""
        if self.labels is not None:
            return self.labels == 1
        if self.scores is not None:
            low, high = float(self.scores.min()), float(self.scores.max())
            return self.scores >= low + 0.8 * (high - low)
        return None


def _number(value, path: Path, line: int, name: str, unit: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(path, f"field {name!r} is {value!r}, expected a number", line=line, unit=unit) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(path, f"field {name!r} is {value!r}, expected a finite number", line=line, unit=unit)
    return float(value)


def read_pairs(
    path: str | Path,
    *,
    text1_field: str = "text1",
    text2_field: str = "text2",
    score_field: str = "score",
    label_field: str = "label",
    negative_field: str = "negative",
) -> Pairs:
    """Read a pair file (.jsonl, .csv, .tsv or .parquet).

    >>> pairs = read_pairs("stsb-test.jsonl")
    >>> pairs.scores[:3]
    """
    path = check_readable(path)
    fmt = detect_format(path)
    if fmt == "txt":
        raise InputError(path, "a pair file needs fields text1 and text2; use .jsonl, .csv, .tsv or .parquet")
    unit = unit_of(fmt)
    text1: list[str] = []
    text2: list[str] = []
    values: list[float] = []
    negatives: list[str] = []
    target: str | None = None
    skipped = 0
    for number, row in iter_rows(path, fmt):
        for name in (text1_field, text2_field):
            if name not in row:
                fields = ", ".join(map(repr, row))
                raise InputError(path, f"no field {name!r} (this row has: {fields})", line=number, unit=unit)
            if row[name] is not None and not isinstance(row[name], str):
                raise InputError(path, f"field {name!r} is a {type(row[name]).__name__}, expected a string", line=number, unit=unit)
        if target is None:
            target = score_field if score_field in row else label_field if label_field in row else ""
        a, b = row[text1_field], row[text2_field]
        if not a or not a.strip() or not b or not b.strip():
            skipped += 1
            continue
        if target:
            if target not in row or row[target] in (None, ""):
                raise InputError(path, f"no value for {target!r}; every pair needs one", line=number, unit=unit)
            values.append(_number(row[target], path, number, target, unit))
        text1.append(a)
        text2.append(b)
        negative = row.get(negative_field)
        negatives.append(negative if isinstance(negative, str) else "")
    if skipped:
        log.info("%s: skipped %d pair(s) with an empty text", path.name, skipped)
    if not text1:
        raise InputError(path, "has no pairs with two non-empty texts: nothing to read")
    pairs = Pairs(text1=text1, text2=text2, path=path, negatives=negatives if any(negatives) else None)
    if target == score_field:
        pairs.scores = np.asarray(values, dtype=np.float64)
    elif target == label_field:
        labels = np.asarray(values)
        if not np.isin(labels, (0, 1)).all():
            raise InputError(path, f"field {label_field!r} must be 0 or 1 (use {score_field!r} for graded similarity)")
        pairs.labels = labels.astype(np.int64)
    return pairs
