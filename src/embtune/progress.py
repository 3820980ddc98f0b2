"""Progress bars on stderr (rich), shown only when stderr is a terminal and the user did not ask for quiet."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

ProgressCallback = Callable[[int], None]


def progress_enabled(show: bool | None) -> bool:
    """``None`` means: show when stderr is a terminal."""
    return sys.stderr.isatty() if show is None else bool(show)


@contextlib.contextmanager
def task_progress(description: str, total: int | None, show: bool | None = None) -> Iterator[ProgressCallback]:
    """Yield ``advance(n)``; draws a bar with rate and ETA on stderr when enabled, else does nothing.

    >>> with task_progress("encoding", total=len(texts)) as advance:
    ...     advance(64)
    """
    if not progress_enabled(show):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.speed:>7.0f}/s" if total else ""),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
