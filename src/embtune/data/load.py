"""Loading what the public functions are given into a :class:`Corpus` (a path, a list of texts, or a Corpus), once.

The entry points (api, auto) call these and pass the Corpus down; nothing below reads the same file again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from embtune.data.corpus import Corpus, read_corpus
from embtune.data.images import is_image_corpus, read_image_corpus
from embtune.data.readers import FORMATS
from embtune.data.vectors import check_vector_rows, l2_normalize
from embtune.errors import EmbtuneError, InputError

log = logging.getLogger(__name__)


def refuse_bare_text(corpus) -> None:
    """A str is a path; one that names no file and has no corpus suffix is most likely a text passed by mistake."""
    if isinstance(corpus, str) and not Path(corpus).exists() and Path(corpus).suffix.lower() not in FORMATS:
        shown = corpus if len(corpus) <= 40 else corpus[:37] + "..."
        raise EmbtuneError(
            f"got the string {shown!r}, which is not a corpus file; to embed texts pass a list, e.g. encode([text])"
        )


def check_texts(texts) -> list[str]:
    """``texts`` as a list, every item a string (else one error naming the first that is not)."""
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise EmbtuneError(f"text {bad} is a {type(texts[bad]).__name__}, expected a string")
    return texts


def first_texts(corpus, text_field: str = "text", n: int = 8192) -> list[str]:
    """Up to ``n`` texts from the start of a corpus file or folder of shards (one streamed chunk), or of a list."""
    if not isinstance(corpus, (str, Path)):
        return check_texts(corpus)[:n]
    from embtune.data.corpus import iter_text_chunks

    return next(iter(iter_text_chunks(corpus, text_field=text_field, chunk_size=n)), [])


def load_corpus(corpus, text_field: str = "text", label_field: str | None = None, use_labels: bool = True, *,
                sample: int | None = None, seed: int = 0) -> Corpus:
    """The corpus in memory (texts or images, with labels when asked for and present); with ``sample``, a fixed-seed
    sample of that many texts when the corpus is bigger. A Corpus is returned as it is."""
    if isinstance(corpus, Corpus):
        return corpus
    refuse_bare_text(corpus)
    if not isinstance(corpus, (str, Path)):
        return Corpus(texts=check_texts(corpus))
    if is_image_corpus(corpus):
        return read_image_corpus(corpus, label_field=label_field or "label", use_labels=use_labels)
    options = {"text_field": text_field, "sample": sample, "seed": seed}
    if not use_labels:
        data = read_corpus(corpus, label_field=None, **options)
    elif label_field is None:
        data = read_corpus(corpus, label_field="label", require_labels=False, **options)
    else:
        data = read_corpus(corpus, label_field=label_field, require_labels=True, **options)
    if data.sampled_from:
        log.info("%s: %d texts; using a fixed-seed sample of %d (seed %d)", Path(corpus).name, data.sampled_from,
                 len(data), seed)
    return data


def load_labelled(source, text_field: str = "text", label_field: str = "label") -> Corpus:
    """A corpus that must have a label per text (classifiers train on them)."""
    data = source if isinstance(source, Corpus) else read_corpus(source, text_field=text_field, label_field=label_field,
                                                                 require_labels=True)
    if data.labels is None:
        raise EmbtuneError(f"{data.describe()}: classify needs a label per text (--labels FIELD)")
    return data


def sample_note(data: Corpus, seed: int) -> list[str]:
    """The note a result carries when it was scored on a sample of the corpus (none otherwise)."""
    if not data.sampled_from:
        return []
    return [f"scored on a fixed-seed sample of {len(data):,} of the corpus's {data.sampled_from:,} texts (seed {seed}); "
            "--sample N changes its size, --sample 0 uses every text"]


def read_test(test: str | Path, text_field: str, label_field: str | None, labelled: bool) -> Corpus:
    """A --test file of the same kind as the corpus (texts or images), with labels when the corpus has them."""
    if is_image_corpus(test):
        return read_image_corpus(test, label_field=label_field or "label", use_labels=labelled)
    return read_corpus(test, text_field=text_field, label_field=(label_field or "label") if labelled else None,
                       require_labels=labelled)


def load_vectors(vectors, n_texts: int, source: str) -> np.ndarray:
    """Precomputed vectors (a .npy path or an array), one row per text of ``source``, checked and L2-normalised."""
    where = "the vectors"
    if isinstance(vectors, (str, Path)):
        path = Path(vectors)
        where = str(path)
        if not path.is_file():
            raise InputError(path, "no such file")
        try:
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(path, f"not a readable .npy file ({e})") from None
    vectors = np.asarray(vectors)
    if vectors.dtype.kind not in "fiu":
        raise EmbtuneError(f"{where}: holds {vectors.dtype} values, not numbers; pass the .npy written by `embtune encode`")
    if vectors.ndim != 2:
        raise EmbtuneError(f"{where}: vectors must be 2-D (texts x dim), got shape {vectors.shape}")
    if len(vectors) != n_texts:
        raise EmbtuneError(
            f"{len(vectors)} vectors for {n_texts} texts in {source}; encode the same corpus (same --text-field) to get them"
        )
    check_vector_rows(vectors, where)
    return l2_normalize(vectors)
