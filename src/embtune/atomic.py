"""Atomic file writes: a temp file beside the target, fsync, then rename, so a killed run never leaves half a file."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

# mkstemp creates 0600 files; give the final file the permissions a plain open() would.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give an OSError raised without a file name (a full disk on write or fsync) the name of ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file next to ``path``; on clean exit it replaces ``path``, on error it is removed.

    >>> with atomic_open("out.json", "w") as f:
    ...     f.write("{}")
    """
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.chmod(tmp, FILE_MODE)
            with os.fdopen(fd, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_cache(path: str | Path, write: Callable[[IO], None], what: str, *, level: int = logging.DEBUG) -> bool:
    """Best effort for a cache file: ``write(f)`` into an atomic temp file that replaces ``path``. An OSError (a
    read-only or full cache folder) is logged at ``level`` as "could not cache ``what``" and only costs the
    recomputation next time; returns whether the file was written."""
    try:
        with atomic_open(path, "wb") as f:
            write(f)
        return True
    except OSError as e:
        logging.getLogger("embtune").log(level, "could not cache %s in %s (%s)", what, Path(path).parent, e)
        return False
