"""On-disk cache of vectors, keyed by model fingerprint + a hash of each item's content.

One SQLite file (WAL mode): every write is a transaction, so a run killed mid-encode keeps every batch it committed and
never leaves a torn entry; several processes can share the cache. The file is bounded: when it grows past
``max_bytes`` the least recently used vectors are evicted. ``embtune cache info`` / ``embtune cache clear`` manage it.

Location: ``$EMBTUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/embtune``, else ``~/.cache/embtune``.
Size limit: ``$EMBTUNE_CACHE_MAX_GB`` (default 4).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY, namespace TEXT NOT NULL UNIQUE, name TEXT NOT NULL, dim INTEGER NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY, model INTEGER NOT NULL, key BLOB NOT NULL, vec BLOB NOT NULL, used REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS vectors_key ON vectors (model, key);
CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used);
CREATE TABLE IF NOT EXISTS file_digests (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL
);
"""
_SCHEMA_VERSION = 1  # bump when the tables change: an older cache file is then emptied and rebuilt
_BATCH = 500  # keys per SQL statement, well under SQLite's variable limit
_USED_RESOLUTION_S = 600.0  # last-use marks are refreshed at most this often, so repeated reads stay read-only
_DEFAULT_MAX_GB = 4.0


def default_cache_dir() -> Path:
    if os.environ.get("EMBTUNE_CACHE_DIR"):
        return Path(os.environ["EMBTUNE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "embtune"


# files kept beside the vector database, each folder by its own key: `cache info` counts them, `cache clear` empties them
SIDE_FOLDERS = {"maps": "explore's 2-D maps", "thumbnails": "explore's image thumbnails",
                "models": "unpacked model files (the USE port's tokenizer and weights)"}


def side_files(directory: Path | None = None) -> list[Path]:
    """The files of the cache folder's side folders (:data:`SIDE_FOLDERS`)."""
    root = Path(directory) if directory is not None else default_cache_dir()
    return [p for name in SIDE_FOLDERS if (root / name).is_dir() for p in (root / name).iterdir() if p.is_file()]


def clear_side_files(directory: Path | None = None) -> int:
    """Delete the side folders' files; returns how many went."""
    files = side_files(directory)
    for path in files:
        path.unlink(missing_ok=True)
    return len(files)


def default_max_bytes() -> int:
    raw = os.environ.get("EMBTUNE_CACHE_MAX_GB", str(_DEFAULT_MAX_GB))
    try:
        gb = float(raw)
    except ValueError:
        raise EmbtuneError(f"EMBTUNE_CACHE_MAX_GB={raw!r} is not a number of gigabytes") from None
    if not gb >= 0 or gb == float("inf"):
        raise EmbtuneError(f"EMBTUNE_CACHE_MAX_GB={raw!r}: give a size in gigabytes of 0 or more (default "
                           f"{_DEFAULT_MAX_GB:g}); to skip the cache, pass --no-cache")
    return int(gb * 2**30)


def _damaged(path: Path, e: Exception) -> EmbtuneError:
    return EmbtuneError(f"vector cache at {path} is damaged ({e}); run `embtune cache clear` to start it afresh "
                        "(it only holds vectors embtune can compute again), or pass --no-cache")


def text_key(text: str) -> bytes:
    """Cache key of one text: 16 bytes of BLAKE2b over its UTF-8 bytes (case and whitespace matter)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


@dataclass
class CacheInfo:
    path: Path
    bytes_on_disk: int
    max_bytes: int
    vectors: int
    models: list[tuple[str, str, int, int]]  # (namespace, name, dim, vectors)


def _reports_damage(method):
    """A corrupt page met in the middle of a read or write becomes the same one-line advice as one met on opening."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            if _is_corruption(e):
                raise _damaged(self.path, e) from None
            raise

    return run


class VectorCache:
    """Get and put float32 vectors by (namespace, key).

    >>> cache = VectorCache()
    >>> found = cache.get_many(encoder.fingerprint, [text_key(t) for t in texts])   # {index: vector}
    """

    def __init__(self, directory: str | Path | None = None, *, max_bytes: int | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / "vectors.sqlite"
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self._conn: sqlite3.Connection | None = None

    # -- connection -------------------------------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only effective on a new file, before the first table
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                if tables and version != _SCHEMA_VERSION:
                    log.info("vector cache %s has an older format; starting it empty", self.path)
                    for table in tables:
                        conn.execute(f"DROP TABLE IF EXISTS {table}")
                    conn.execute("VACUUM")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            except (OSError, sqlite3.Error) as e:
                if isinstance(e, sqlite3.DatabaseError) and _is_corruption(e):
                    raise _damaged(self.path, e) from None
                raise EmbtuneError(
                    f"vector cache at {self.path} cannot be opened ({e}); set EMBTUNE_CACHE_DIR to a writable folder "
                    "or pass --no-cache"
                ) from None
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- vectors ----------------------------------------------------------------------------------------------------

    def _model_id(self, namespace: str) -> int | None:
        row = self.conn.execute("SELECT id FROM models WHERE namespace=?", (namespace,)).fetchone()
        return row[0] if row else None

    @_reports_damage
    def get_many(self, namespace: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys``, as {key: float32 vector}; marks them recently used."""
        model = self._model_id(namespace)
        if model is None:
            return {}
        found: dict[bytes, np.ndarray] = {}
        stale: list[int] = []  # hits whose last-use mark is old enough to be worth a write
        now = time.time()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH):
            batch = unique[start : start + _BATCH]
            marks = ",".join("?" * len(batch))
            rows = self.conn.execute(
                f"SELECT id, key, vec, used FROM vectors WHERE model=? AND key IN ({marks})", (model, *batch)
            ).fetchall()
            for row_id, key, vec, used in rows:
                found[key] = np.frombuffer(vec, dtype=np.float32)
                if now - used > _USED_RESOLUTION_S:
                    stale.append(row_id)
        if stale:
            with self.conn:
                self.conn.execute("BEGIN")
                for start in range(0, len(stale), _BATCH):
                    batch = stale[start : start + _BATCH]
                    self.conn.execute(f"UPDATE vectors SET used=? WHERE id IN ({','.join('?' * len(batch))})", (now, *batch))
        return found

    @_reports_damage
    def put_many(self, namespace: str, name: str, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` under ``keys[i]`` in one transaction, then evict if the cache is over its limit."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        now = time.time()
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT OR IGNORE INTO models (namespace, name, dim, created) VALUES (?, ?, ?, ?)",
                (namespace, name, vectors.shape[1], now),
            )
            model = self._model_id(namespace)
            self.conn.executemany(
                "INSERT OR REPLACE INTO vectors (model, key, vec, used) VALUES (?, ?, ?, ?)",
                ((model, key, vec.tobytes(), now) for key, vec in zip(keys, vectors)),
            )
        self._evict_if_needed()

    def _used_bytes(self) -> int:
        page_size, pages, free = (
            self.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count", "freelist_count")
        )
        return page_size * (pages - free)

    def _evict_if_needed(self) -> None:
        used = self._used_bytes()
        if used <= self.max_bytes:
            return
        # Drop the least recently used rows until about 80 % of the limit is used, in proportion to the overshoot.
        total = self.conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        drop = max(1, int(total * (1 - 0.8 * self.max_bytes / used)))
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM vectors WHERE id IN (SELECT id FROM vectors ORDER BY used, id LIMIT ?)", (drop,))
            self.conn.execute("DELETE FROM models WHERE id NOT IN (SELECT DISTINCT model FROM vectors)")
        self.conn.execute("PRAGMA incremental_vacuum")

    # -- file digests (model fingerprints) --------------------------------------------------------------------------

    @_reports_damage
    def file_digest(self, path: Path) -> str:
        """SHA-1 of a file's bytes, remembered by (path, size, mtime) so big weight files are hashed once."""
        path = path.resolve()
        stat = path.stat()
        row = self.conn.execute("SELECT size, mtime_ns, digest FROM file_digests WHERE path=?", (str(path),)).fetchone()
        if row and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return row[2]
        digest = hash_file(path)
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO file_digests (path, size, mtime_ns, digest) VALUES (?, ?, ?, ?)",
                (str(path), stat.st_size, stat.st_mtime_ns, digest),
            )
        return digest

    # -- management -------------------------------------------------------------------------------------------------

    @_reports_damage
    def info(self) -> CacheInfo:
        models = self.conn.execute(
            "SELECT m.namespace, m.name, m.dim, COUNT(v.id) FROM models m LEFT JOIN vectors v ON v.model = m.id "
            "GROUP BY m.id ORDER BY m.name"
        ).fetchall()
        size = sum(p.stat().st_size for p in self.directory.glob("vectors.sqlite*") if p.is_file())
        return CacheInfo(
            path=self.path,
            bytes_on_disk=size,
            max_bytes=self.max_bytes,
            vectors=sum(m[3] for m in models),
            models=[tuple(m) for m in models],
        )

    def clear(self, names: Iterable[str] | None = None) -> int:
        """Delete every vector (or those of the models whose name or fingerprint is in ``names``); returns the count.

        A damaged cache file cannot be read to count or pick from, so clearing it removes the file (all models); it
        only held vectors that embtune can compute again. The count is then -1.
        """
        try:
            return self._clear(names)
        except EmbtuneError:
            if not self._files_damaged():
                raise
            self.close()
            for path in self.directory.glob("vectors.sqlite*"):
                path.unlink()
            log.warning("the vector cache %s was damaged; removed it (every model's vectors)", self.path)
            return -1

    def _files_damaged(self) -> bool:
        if not self.path.exists():
            return False
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            try:
                return conn.execute("PRAGMA quick_check").fetchone()[0] != "ok"
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            return _is_corruption(e)

    @_reports_damage
    def _clear(self, names: Iterable[str] | None) -> int:
        with self.conn:
            self.conn.execute("BEGIN")
            if names is None:
                count = self.conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
                self.conn.execute("DELETE FROM vectors")
                self.conn.execute("DELETE FROM models")
            else:
                wanted = list(names)
                marks = ",".join("?" * len(wanted))
                ids = [
                    r[0]
                    for r in self.conn.execute(
                        f"SELECT id FROM models WHERE name IN ({marks}) OR namespace IN ({marks})", (*wanted, *wanted)
                    )
                ]
                count = 0
                for model in ids:
                    count += self.conn.execute("DELETE FROM vectors WHERE model=?", (model,)).rowcount
                    self.conn.execute("DELETE FROM models WHERE id=?", (model,))
        self.conn.execute("PRAGMA incremental_vacuum")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def __enter__(self) -> VectorCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_corruption(e: sqlite3.DatabaseError) -> bool:
    """SQLite's words for a file that is not (or no longer) a valid database."""
    text = str(e).lower()
    return any(w in text for w in ("not a database", "malformed", "corrupt", "file is encrypted"))


def hash_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.sha1(usedforsecurity=False)).hexdigest()


def directory_fingerprint(directory: Path, cache: VectorCache | None = None, *, extra: str = "") -> str:
    """Identity of a model folder: a hash over every file's relative path and content (plus ``extra`` settings).

    Two folders with the same files give the same fingerprint, so a copied model reuses its cached vectors.
    """
    h = hashlib.sha1(usedforsecurity=False)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel.startswith((".", "checkpoints/")) or "/." in rel or rel.endswith((".lock", ".tmp")):
            continue  # hidden files, locks and training checkpoints do not change the vectors
        if rel in ("README.md", "embtune.json"):
            continue  # nor do the model card and the training summary
        digest = cache.file_digest(path) if cache is not None else hash_file(path)
        h.update(f"{rel}\0{digest}\n".encode())
    h.update(extra.encode())
    return h.hexdigest()
