"""Writing a large encode's vectors and row ids chunk by chunk so that a killed run resumes where it stopped.

While it runs, ``vectors.npy`` is built in ``vectors.npy.partial/`` (vectors + ids + ``progress.json``). After each chunk
both files are flushed to disk and ``progress.json`` is replaced atomically with the committed chunk count and byte
sizes; a restart with the same corpus, model and settings truncates anything written after the last commit and carries on
from the next chunk. A work folder whose files no longer match its ``progress.json`` (a file removed or cut short) is
started over with one warning. The run holds a lock on ``lock`` in the work folder, so a second encode of the same
output is refused with the first one's pid instead of tearing it. On a clean close the finished ``vectors.npy``
(memory-mappable) and ``vectors.ids.jsonl`` (one JSON id per line, same order) are moved into place and the work folder
is removed. Memory holds one chunk at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from embtune.atomic import atomic_write_text, naming
from embtune.data.readers import corpus_files
from embtune.data.vectors import npy_header
from embtune.outputs import check_free_space, output_lock

log = logging.getLogger(__name__)

_VECTORS = "vectors.npy"
_IDS = "ids.jsonl"
_PROGRESS = "progress.json"
_LOCK = "lock"  # held for the whole run: a second encode of the same output stops at once


def ids_path_for(output: str | Path) -> Path:
    """Where the row ids of ``vectors.npy`` go: ``vectors.ids.jsonl`` beside it."""
    output = Path(output)
    return output.with_name(output.stem + ".ids.jsonl")


def corpus_identity(corpus: str | Path) -> list[list[Any]]:
    """Name, size and modification time of each corpus file: a resumed encode must read exactly the same bytes."""
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in corpus_files(corpus)]


class ResumableVectorWriter:
    """Append chunks of vectors with their ids; resume after a crash when ``identity`` matches the unfinished run.

    >>> writer = ResumableVectorWriter("vectors.npy", identity={"model": "...", "corpus": [...]})
    >>> for i, (vectors, ids) in enumerate(chunks):
    ...     if i >= writer.chunks_done:
    ...         writer.write(vectors, ids)
    >>> writer.close()
    """

    def __init__(self, output: str | Path, *, identity: dict[str, Any], expected_rows: int | None = None):
        self.output = Path(output)
        self.ids_output = ids_path_for(self.output)
        self.work = self.output.with_name(self.output.name + ".partial")
        self.identity = json.loads(json.dumps(identity))  # what progress.json will hold, to compare like with like
        self.chunks_done = 0
        self.rows = 0
        self.dim: int | None = None
        self.expected_rows = expected_rows
        self._ids_bytes = 0
        self._vectors = None
        self._ids = None
        self._lock = contextlib.ExitStack()
        self._made_parents = [p for p in self.work.parents if not p.exists()]  # removed again if nothing is kept
        self.work.mkdir(parents=True, exist_ok=True)
        self._lock.enter_context(output_lock(self.work / _LOCK, self.output))
        progress = self._read_progress()
        same_run = progress is not None and progress.get("identity") == self.identity
        damage = self._damage(progress) if same_run else None
        if same_run and damage is None:
            self.chunks_done, self.rows, self.dim, self._ids_bytes = (
                progress["chunks"], progress["rows"], progress["dim"], progress["ids_bytes"]
            )
            if self.chunks_done:
                log.info("%s: resuming an unfinished encode: %d chunk(s), %d vectors already written",
                         self.output.name, self.chunks_done, self.rows)
        elif damage is not None:
            log.warning("%s: the unfinished encode in %s is damaged (%s); starting over", self.output.name, self.work, damage)
            self._clear_work()
        elif any(p.name != _LOCK for p in self.work.iterdir()):
            log.info("%s: an unfinished encode of another corpus, model or setting was found; starting over", self.output.name)
            self._clear_work()

    def _damage(self, progress: dict[str, Any]) -> str | None:
        """What is wrong with a work folder whose progress.json matches this run, or None when it can be resumed."""
        try:
            chunks, rows, dim, ids_bytes = (int(progress[k]) for k in ("chunks", "rows", "dim", "ids_bytes"))
        except (KeyError, TypeError, ValueError):
            return "progress.json is incomplete"
        if not chunks:
            return None
        for name, size in ((_VECTORS, len(npy_header(0, dim)) + rows * dim * 4), (_IDS, ids_bytes)):
            path = self.work / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size < size:
                return f"{name} is shorter than its {chunks} committed chunk(s)"
        return None

    def _clear_work(self) -> None:
        """Empty the work folder but keep the lock file we hold (removing it would let a second run lock a new one)."""
        for path in self.work.iterdir():
            if path.name == _LOCK:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def _read_progress(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.work / _PROGRESS).read_text())
        except (OSError, ValueError):
            return None

    def _open(self, dim: int) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        vectors_path, ids_path = self.work / _VECTORS, self.work / _IDS
        if self.chunks_done:
            # Drop whatever a killed run wrote after its last commit.
            self._vectors = open(vectors_path, "r+b")
            self._vectors.truncate(len(npy_header(0, dim)) + self.rows * dim * 4)
            self._vectors.seek(0, os.SEEK_END)
            self._ids = open(ids_path, "r+b")
            self._ids.truncate(self._ids_bytes)
            self._ids.seek(0, os.SEEK_END)
        else:
            self._vectors = open(vectors_path, "wb")
            self._vectors.write(npy_header(0, dim))
            self._ids = open(ids_path, "wb")
        self.dim = dim
        if self.expected_rows:  # the width is known now: fail before the long part if the rest cannot fit
            remaining = max(0, self.expected_rows - self.rows) * (dim * 4 + 16)  # vectors + about 16 bytes of id each
            check_free_space(self.work, remaining, f"encoding about {self.expected_rows:,} rows into {self.output.name}")

    def write(self, vectors: np.ndarray, ids: list[Any]) -> None:
        """Append one chunk and commit it: after this returns, a crash cannot lose it."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"expected (n, dim) vectors with n ids, got {vectors.shape} and {len(ids)} ids")
        if self._vectors is None:
            self._open(vectors.shape[1])
        if vectors.shape[1] != self.dim:
            raise ValueError(f"expected {self.dim}-dimensional vectors, got {vectors.shape[1]}")
        with naming(self.work / _VECTORS):
            self._vectors.write(vectors.tobytes())
            self._ids.write("".join(json.dumps(i, ensure_ascii=False, default=str) + "\n" for i in ids).encode("utf-8"))
            for f in (self._vectors, self._ids):
                f.flush()
                os.fsync(f.fileno())
        self.rows += len(vectors)
        self.chunks_done += 1
        self._ids_bytes = self._ids.tell()
        atomic_write_text(self.work / _PROGRESS, json.dumps({
            "identity": self.identity, "chunks": self.chunks_done, "rows": self.rows, "dim": self.dim,
            "ids_bytes": self._ids_bytes,
        }))

    def close(self) -> Path:
        """Finish: fill in the row count, move ``vectors.npy`` and its ids into place, remove the work folder."""
        if self._vectors is None:
            if self.dim is None:
                raise ValueError("nothing was written")
            self._open(self.dim)  # every chunk came from the previous run
        with naming(self.work / _VECTORS):
            self._vectors.seek(0)
            self._vectors.write(npy_header(self.rows, self.dim))
            for f in (self._vectors, self._ids):
                f.flush()
                os.fsync(f.fileno())
                f.close()
        os.replace(self.work / _VECTORS, self.output)
        os.replace(self.work / _IDS, self.ids_output)
        shutil.rmtree(self.work)
        self._lock.close()
        return self.output

    def discard(self) -> None:
        """Remove the work folder (the input was bad: there is nothing worth resuming)."""
        self.release()
        shutil.rmtree(self.work, ignore_errors=True)
        self._remove_made_parents()

    def release(self) -> None:
        """Close the files and the lock and keep the work folder to resume from (an interruption, a full disk); a
        folder with no committed chunk holds nothing worth resuming and is removed."""
        for f in (self._vectors, self._ids):
            if f is not None and not f.closed:
                f.close()
        if not self.chunks_done:
            shutil.rmtree(self.work, ignore_errors=True)
            self._remove_made_parents()
        self._lock.close()

    def _remove_made_parents(self) -> None:
        """Remove the folders this run created for its output, deepest first, while they are empty: a run that keeps
        nothing leaves nothing (``-o new/dir/v.npy`` on a bad corpus leaves no empty ``new/dir``)."""
        for folder in self._made_parents:
            try:
                folder.rmdir()
            except OSError:
                return
