"""The label state of a bulk-labelling session as an append-only event log: nothing applied is ever lost.

Every action a person takes (label a selection, remove labels, accept propagated labels, undo, redo) is one JSON line
appended to ``labels.events.jsonl`` and fsync'd before the action counts, so a killed process (even ``kill -9``) loses
nothing that was acknowledged. The current labels are the replay of the log: actions are kept on a stack; ``undo``
takes the last one off (onto a redo stack), ``redo`` puts it back, and a new action clears the redo stack. Labels are
exclusive: an item labelled again takes the new label. A label action may also name the items the person took out of
the selection before applying it (``left_out``): they were seen and are *not* that label, which propagation respects
(:meth:`LabelLog.ruled_out`).

A line torn by a crash mid-write (no trailing newline, or not JSON) is the only thing replay drops: it is cut from the
file on open, and the file's earlier lines are intact because they were fsync'd first.

>>> log = LabelLog.open(folder / "labels.events.jsonl")
>>> log.apply("label", [3, 7, 9], label="billing")
>>> log.labels()          # {3: Label("billing", "manual", 1.0), ...}
>>> log.undo()
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from embtune.errors import EmbtuneError

EVENTS_FILE = "labels.events.jsonl"
ACTIONS = ("label", "unlabel")  # what a person applies; "undo" and "redo" move along the stack
SOURCES = ("manual", "propagated")


@dataclass(frozen=True)
class Label:
    label: str
    source: str  # "manual" or "propagated"
    confidence: float  # 1.0 for a person's label; the propagation's vote share otherwise


class LabelLog:
    """Append-only, fsync'd label events and the state they replay to (see the module docstring)."""

    def __init__(self, path: Path, events: list[dict]):
        self.path = Path(path)
        self._done: list[dict] = []  # applied actions, oldest first
        self._undone: list[dict] = []  # undone actions, most recently undone last
        self.events_count = len(events)
        for event in events:
            self._replay(event)

    @classmethod
    def open(cls, path: str | Path) -> LabelLog:
        """The log at ``path`` (created when missing), replayed; a torn last line is cut off."""
        path = Path(path)
        events: list[dict] = []
        if path.is_file():
            raw = path.read_bytes()
            good = 0  # bytes up to the end of the last complete, readable line
            for line in raw.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    break
                if not isinstance(event, dict) or event.get("op") not in (*ACTIONS, "undo", "redo"):
                    raise EmbtuneError(f"{path}: line {len(events) + 1} is not a label event ({line[:80]!r}); "
                                       "this file was not written by embtune explore, or was edited")
                events.append(event)
                good += len(line)
            if good < len(raw):
                with open(path, "r+b") as f:  # drop the torn tail so the next append starts on a fresh line
                    f.truncate(good)
                    f.flush()
                    os.fsync(f.fileno())
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        return cls(path, events)

    def _replay(self, event: dict) -> None:
        op = event["op"]
        if op in ACTIONS:
            self._done.append(event)
            self._undone.clear()
        elif op == "undo" and self._done:
            self._undone.append(self._done.pop())
        elif op == "redo" and self._undone:
            self._done.append(self._undone.pop())

    def _append(self, event: dict) -> dict:
        event = {"seq": self.events_count + 1, "time": round(time.time(), 3), **event}
        line = json.dumps(event, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.events_count += 1
        self._replay(event)
        return event

    def apply(self, op: str, items: list[int], *, label: str | None = None, source: str = "manual",
              confidences: list[float] | None = None, left_out: list[int] | None = None) -> dict:
        """Record one action on ``items`` (row numbers of the corpus) and return its event. ``op`` "label" needs a
        non-empty ``label``; ``confidences`` (one per item) come with propagated labels; ``left_out``: items the person
        took out of the selection before labelling it (seen, and not this label)."""
        if op not in ACTIONS:
            raise ValueError(f"op must be one of {', '.join(ACTIONS)} (got {op!r})")
        items = [int(i) for i in items]
        if not items:
            raise ValueError("an action needs at least one item")
        event: dict = {"op": op, "items": items}
        if op == "label":
            if not isinstance(label, str) or not label.strip():
                raise ValueError("a label action needs a non-empty label")
            if source not in SOURCES:
                raise ValueError(f"source must be one of {', '.join(SOURCES)} (got {source!r})")
            event.update(label=label.strip(), source=source)
            if confidences is not None:
                if len(confidences) != len(items):
                    raise ValueError(f"{len(confidences)} confidences for {len(items)} items")
                event["confidences"] = [round(float(c), 4) for c in confidences]
            left_out = sorted({int(i) for i in left_out or []} - set(items))
            if left_out:
                event["left_out"] = left_out
        elif left_out:
            raise ValueError("left_out goes with a label action")
        return self._append(event)

    def undo(self) -> dict | None:
        """Take back the last applied action; None when there is nothing to undo (nothing is written then)."""
        return self._append({"op": "undo"}) if self._done else None

    def redo(self) -> dict | None:
        """Re-apply the last undone action; None when there is nothing to redo."""
        return self._append({"op": "redo"}) if self._undone else None

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def labels(self) -> dict[int, Label]:
        """Item -> its current label, from the applied actions in order (exclusive: the last label wins)."""
        state: dict[int, Label] = {}
        for event in self._done:
            if event["op"] == "unlabel":
                for item in event["items"]:
                    state.pop(item, None)
                continue
            confidences = event.get("confidences") or [1.0] * len(event["items"])
            for item, confidence in zip(event["items"], confidences):
                state[item] = Label(event["label"], event.get("source", "manual"), float(confidence))
        return state

    def ruled_out(self) -> dict[int, set[str]]:
        """Item -> the labels a person said it is not: it was in a selection and taken out of it before that
        selection got the label (applied actions only, so an undo takes this back too)."""
        out: dict[int, set[str]] = {}
        for event in self._done:
            for item in event.get("left_out", ()):
                out.setdefault(item, set()).add(event["label"])
        return out

    def actions(self) -> int:
        """How many actions are applied now (undone ones not counted)."""
        return len(self._done)
