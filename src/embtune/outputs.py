"""Where embtune writes, and the one rule every command follows so that nothing a user owns is lost.

- An output never equals or aliases an input (symlinks and hard links resolved), side files included (the ids file
  beside ``vectors.npy``); an output folder never holds an input, and an output never lands inside an input folder.
- An output folder is written only when it is new, empty, or embtune's own: a marker file (:data:`MARKER`) tells
  embtune's folders apart from a user's. A folder holding anything else needs ``--overwrite`` (``overwrite=True``),
  and even then only the files embtune writes are replaced; nothing else in it is removed.
- Files are written under a temp name in the same folder and moved into place on success (:mod:`embtune.atomic`).
- Before any work starts, the target folder is probed for writing, and free space is checked where the size is known,
  so a read-only folder or a full disk fails at once with the path, not after an hour of encoding.
- One run at a time per output: :func:`output_lock` holds an ``fcntl`` lock; a second run on the same output says which
  process holds it and stops (exit 1).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from embtune.atomic import FILE_MODE
from embtune.errors import EmbtuneError

MARKER = ".embtune-output"  # in every folder embtune writes; also the folder's lock file
# Files that mark folders written by embtune versions from before the marker.
_OWN_FILES = ("embtune.json", "tuning.json", "auto.json")
_OWN_CONFIG_KEYS = ("embtune_tuner", "embtune_classifier")


class OutputLockedError(EmbtuneError):
    """Another process is writing the same output."""


def _local_paths(inputs: Iterable[str | Path | None]) -> list[Path]:
    """The inputs that are paths on this machine (model names like 'all-MiniLM-L6-v2' and None are skipped)."""
    paths = []
    for item in inputs:
        if item is None or not isinstance(item, (str, Path)):
            continue
        text = str(item)
        if text.startswith("tfhub:"):
            text = text[len("tfhub:"):]
        path = Path(text).expanduser()
        if path.exists():
            paths.append(path)
    return paths


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        with contextlib.suppress(OSError):
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child != parent and parent in child.parents


def check_not_input(output: str | Path, inputs: Iterable[str | Path | None], *, what: str = "output") -> None:
    """Refuse an output that is an input, lies inside an input folder, or (as a folder) holds an input."""
    output = Path(output).expanduser()
    for source in _local_paths(inputs):
        if _same(output, source):
            raise EmbtuneError(f"{output}: the {what} is also an input ({source}); writing it would destroy that input. "
                               "Choose another output path")
        if source.is_dir() and _inside(output, source):
            raise EmbtuneError(f"{output}: the {what} lies inside the input folder {source}; write it elsewhere")
        if _inside(source, output):
            raise EmbtuneError(f"{output}: the {what} folder holds an input ({source}); choose a folder of its own")


def is_embtune_folder(folder: str | Path) -> bool:
    """True when ``folder`` was written by embtune: it holds the marker, or (older runs) one of embtune's own files."""
    folder = Path(folder)
    if (folder / MARKER).is_file() or any((folder / name).is_file() for name in _OWN_FILES):
        return True
    with contextlib.suppress(OSError, ValueError, AttributeError):
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return any(key in config for key in _OWN_CONFIG_KEYS)
    return False


def check_writable(folder: str | Path, *, create: bool = False) -> None:
    """Prove a file can be made in ``folder`` (read-only mounts fail here even for root).

    ``create=True`` makes the folder first; otherwise a folder that does not exist yet is judged by its nearest
    existing parent, and nothing is created, so a run that fails later leaves no empty folder behind.
    """
    folder = Path(folder)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        probe_in = folder
        while not probe_in.exists() and probe_in != probe_in.parent:
            probe_in = probe_in.parent
        if not probe_in.is_dir():
            raise EmbtuneError(f"{folder}: {probe_in} is a file, so this folder cannot be made; check the path")
        fd, probe = tempfile.mkstemp(prefix=".embtune-probe.", dir=probe_in)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise EmbtuneError(f"{folder}: cannot write here ({e.strerror or e}); choose a writable folder for the output") from None


def check_free_space(folder: str | Path, needed_bytes: int, what: str) -> None:
    """Fail before the work when the disk holding ``folder`` has less room than ``needed_bytes`` (plus 1 %)."""
    free = shutil.disk_usage(folder).free
    if needed_bytes * 1.01 > free:
        raise EmbtuneError(f"{folder}: {what} needs about {_mb(needed_bytes)} but only {_mb(free)} is free on that disk; "
                           "free some space or write the output elsewhere")


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def prepare_output_file(path: str | Path, *, inputs: Iterable[str | Path | None] = (),
                        side_files: Iterable[str | Path] = ()) -> Path:
    """Check a file output (and the side files written with it) before any work: returns ``path``.

    ``path`` itself may be replaced (the user named it); a side file the user did not name may only replace the
    side file of an earlier run of the same output (``path`` or its unfinished ``.partial`` run exists, or the file
    holds one JSON id per line), so a user's own file of that name is refused.
    """
    path = Path(path).expanduser()
    inputs = list(inputs)
    if path.is_dir():
        raise EmbtuneError(f"{path}: is a folder; -o takes a file name here, e.g. {path / 'vectors.npy'}")
    check_not_input(path, inputs)
    for side in map(Path, side_files):
        check_not_input(side, inputs, what=f"file written beside {path.name}")
        earlier_run = path.exists() or path.with_name(path.name + ".partial").is_dir()
        if side.exists() and not earlier_run and not _looks_like_ids(side):
            raise EmbtuneError(f"{side}: exists, and embtune would replace it with the row ids of {path.name}; "
                               "move it away or choose another output name")
    check_writable(path.parent)
    return path


def _looks_like_ids(path: Path) -> bool:
    """True for a file embtune could have written as row ids: its first line is one JSON number or string."""
    try:
        with open(path, "rb") as f:
            first = f.readline(4096)
        return isinstance(json.loads(first), (int, float, str)) if first.strip() else True
    except (OSError, ValueError):
        return False


def prepare_output_folder(folder: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                          command: str = "embtune") -> Path:
    """Check an output folder before any work and mark it as embtune's: returns ``folder``.

    Refused: a file at that path; a folder that is or holds an input; a folder holding files embtune did not write
    (unless ``overwrite``).
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise EmbtuneError(f"{folder}: is a file, not a folder; -o takes a folder here (it will hold several files)")
    check_not_input(folder, inputs)
    if folder.is_dir() and not overwrite and not is_embtune_folder(folder):
        foreign = sorted(p.name for p in folder.iterdir())
        if foreign:
            shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
            raise EmbtuneError(f"{folder}: holds files embtune did not write ({shown}); choose a new or empty folder, "
                               "or pass --overwrite to write into it (its other files are left as they are)")
    check_writable(folder, create=True)
    marker = folder / MARKER
    if not marker.exists():
        with contextlib.suppress(FileExistsError):
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.write(fd, (json.dumps({"written_by": "embtune", "command": command}) + "\n").encode())
            os.close(fd)
    return folder


@contextlib.contextmanager
def output_lock(lock_file: str | Path, what: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if needed) for as long as the block runs.

    A second process asking for the same lock is refused at once with the holder's pid: two runs writing one output
    would tear it. The lock goes with the process, so a killed run never leaves a stale lock behind.
    """
    lock_file = Path(lock_file)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = _holder(fd)
            raise OutputLockedError(f"{what}: another embtune run{holder} is writing it; wait for it to finish (or stop "
                                    "it), then run again") from None
        _record_holder(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        pid = json.loads(os.pread(fd, 4096, 0).decode() or "{}").get("pid")
        if pid:
            return f" (pid {int(pid)})"
    return ""


def _record_holder(fd: int) -> None:
    """Write our pid into the lock file, keeping the rest of its JSON (the marker's 'written_by')."""
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
        try:
            content = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except ValueError:
            content = {}
        content = content if isinstance(content, dict) else {}
        content.update(written_by="embtune", pid=os.getpid())
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(content) + "\n").encode(), 0)


@contextlib.contextmanager
def output_folder(folder: str | Path | None, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                  command: str = "embtune") -> Iterator[Path | None]:
    """:func:`prepare_output_folder` and :func:`output_lock` on its marker, for the length of the block.

    ``folder=None`` (no output asked for) does nothing.
    """
    if folder is None:
        yield None
        return
    folder = prepare_output_folder(folder, inputs=inputs, overwrite=overwrite, command=command)
    with output_lock(folder / MARKER, folder):
        yield folder


def writes_output_folder(command: str, *, inputs: tuple[str, ...]):
    """Decorate a public function whose ``output`` parameter is a folder (or None): the folder is checked, marked and
    locked (:func:`output_folder`) before the function runs and stays locked until it returns.

    ``inputs`` names the parameters holding input paths (corpus, model, test file). ``overwrite=True`` (or
    ``resume=True``, which continues embtune's own run) lets it write into a folder holding other files. Under torchrun
    only rank 0 writes, so only rank 0 checks and locks.
    """
    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = dict(bound.arguments)
            for name, param in signature.parameters.items():  # options passed through **kwargs count too
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    given.update(given.pop(name, {}))
            folder = given.get("output")
            if folder is None or os.environ.get("RANK", "0") != "0":
                return fn(*args, **kwargs)
            overwrite = bool(given.get("overwrite")) or bool(given.get("resume"))
            with output_folder(folder, inputs=[given.get(name) for name in inputs], overwrite=overwrite, command=command):
                return fn(*args, **kwargs)

        return run

    return wrap
