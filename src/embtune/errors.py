"""Errors a user can act on.

Everything raised as :class:`EmbtuneError` is shown by the CLI as one line (exit code 1); anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path


class EmbtuneError(Exception):
    """A problem with the user's input, files, models or environment: one line that says what and how to fix it.

    The message is kept to one line whatever it quotes: a line break inside it (a file or field name can hold one)
    is shown escaped, as ``\\n``.
    """

    def __init__(self, message: object = "", *args: object):
        text = str(message)
        if "\n" in text or "\r" in text:
            text = text.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(text, *args)


class InputError(EmbtuneError):
    """Bad content in an input file, located by file and line (or row) and field."""

    def __init__(self, path: str | Path, problem: str, *, line: int | None = None, unit: str = "line"):
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}" if line is None else f"{self.path} {unit} {line}"
        super().__init__(f"{where}: {problem}")


class ModelNotFoundError(EmbtuneError):
    """A model name or path that cannot be resolved to files on this machine."""
