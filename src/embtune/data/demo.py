"""The corpus that ships inside the package, for `make demo` and first experiments (see data/demo_corpus/README.md)."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo_corpus"


def demo_corpus_path() -> Path:
    """Path of the bundled BANKING77 slice: 2,002 customer-service queries in 77 intents (CC BY 4.0).

    >>> from embtune.data import demo_corpus_path, read_corpus
    >>> read_corpus(demo_corpus_path()).n_labels
    77
    """
    return DEMO_DIR / "banking77_demo.jsonl"
