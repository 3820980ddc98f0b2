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


@contextlib.contextmanager
def training_progress(total: int, show: bool | None = None, description: str = "training"):
    """Yield ``update(step, total, loss)``: a bar with the step, the latest loss, steps/s and time left."""
    if not progress_enabled(show):
        yield lambda step, total_, loss: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TaskProgressColumn(text_format="", show_speed=True),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, loss=float("nan"))

        def update(step: int, total_: int, loss: float) -> None:
            bar.update(task, completed=step, total=total_, loss=loss)

        yield update
