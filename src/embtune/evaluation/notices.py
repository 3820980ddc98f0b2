"""Warnings an evaluation gives once per process: a before/after comparison evaluates the same labels twice."""

from __future__ import annotations

import logging

_given: set[tuple[str, str]] = set()


def warn_once(log: logging.Logger, message: str) -> None:
    """``log.warning(message)`` unless this logger already gave this exact message."""
    if (log.name, message) not in _given:
        _given.add((log.name, message))
        log.warning("%s", message)
