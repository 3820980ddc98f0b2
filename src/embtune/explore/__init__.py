"""`embtune explore`: the corpus as a map before / after tuning, for labelling whole clusters at once (a local
server with a per-run token; the label state is an fsync'd event log in the output folder)."""

from __future__ import annotations

from embtune.lazy import lazy_exports

_EXPORTS = {
    "ExploreServer": "server",
    "ExploreSession": "session",
    "open_session": "session",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
