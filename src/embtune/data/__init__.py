"""Reading corpora, pair files and writing vectors."""

from embtune.data.corpus import Corpus, ReadStats, iter_records, iter_text_chunks, read_corpus
from embtune.data.demo import demo_corpus_path
from embtune.data.pairs import Pairs, read_pairs
from embtune.data.readers import detect_format, iter_rows
from embtune.data.vectors import NpyStreamWriter

__all__ = [
    "Corpus",
    "NpyStreamWriter",
    "Pairs",
    "ReadStats",
    "demo_corpus_path",
    "detect_format",
    "iter_records",
    "iter_rows",
    "iter_text_chunks",
    "read_corpus",
    "read_pairs",
]
