"""The config.json of a folder embtune saves (tuners, classifiers): one place for its checks, errors and JSON types."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embtune.errors import EmbtuneError

FORMAT_VERSION = 1


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars (inside dicts, lists and tuples too) as plain JSON types.

    >>> jsonable({"classes": np.array([1, 2]), "n": np.int64(3)})
    {'classes': [1, 2], 'n': 3}
    """
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # ndarray -> nested lists, numpy scalar -> Python scalar
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def read_saved_config(path: str | Path, *, key: str, known, what: str, how: str) -> dict[str, Any]:
    """The parsed ``path/config.json`` whose ``key`` names one of ``known`` classes, or a clear error.

    ``what`` names the kind of folder ("tuner"), ``how`` says how to make one ("`embtune tune -o`").
    """
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise EmbtuneError(f"{path}: not a saved {what} (no config.json); make one with {how}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EmbtuneError(f"{config_path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise EmbtuneError(f"{config_path}: expected a JSON object, got a {type(config).__name__}; the {what} folder is damaged")
    name = config.get(key)
    if not isinstance(name, str) or name not in known:
        raise EmbtuneError(f"{config_path}: unknown {what} class {name!r}; known: {', '.join(sorted(known))}")
    version = config.get("format", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise EmbtuneError(f"{config_path}: 'format' is {version!r}, expected a whole number; the {what} folder is damaged")
    if version > FORMAT_VERSION:
        raise EmbtuneError(f"{config_path}: written by a newer embtune (format {config['format']}); upgrade embtune")
    return config


@contextlib.contextmanager
def rebuilding(path: str | Path, *, what: str, how: str) -> Iterator[None]:
    """Rebuild a saved folder inside this block: any failure (a file cut short, an edited or wrong-typed config) means
    the files are damaged, and becomes one :class:`EmbtuneError` naming the folder; ``how`` says how to make it again."""
    try:
        yield
    except EmbtuneError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the rebuild raised, the cause is the folder's content
        detail = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        raise EmbtuneError(f"{path}: damaged {what} folder ({detail}); {how} or restore the folder from a copy") from None
