"""Bulk labelling: the label state as a crash-safe event log, and what helps a person label less (suggested clusters
with keywords, label propagation, a queue of what to look at next, suspect labels)."""

from __future__ import annotations

from embtune.lazy import lazy_exports

_EXPORTS = {
    "EVENTS_FILE": "events",
    "Label": "events",
    "LabelLog": "events",
    "Suggestion": "assist",
    "class_tfidf_keywords": "assist",
    "next_to_label": "assist",
    "propagate": "assist",
    "suggest_clusters": "assist",
    "suspects": "assist",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
