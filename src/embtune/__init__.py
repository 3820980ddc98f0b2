"""embtune: adapt pretrained embedding models to your own data, mostly without labels, and prove whether it helped.

>>> import embtune
>>> vectors = embtune.encode(["Where is my card?", "How do I top up?"])
>>> result = embtune.evaluate("corpus.jsonl")
>>> result.metrics["silhouette"]

Everything loads lazily, so `import embtune` (and `embtune --help`) stays fast.
"""

from __future__ import annotations

from embtune.lazy import lazy_exports

__version__ = "0.1.0"


def encode(corpus, **options):
    """Vectors for a list of texts or a corpus file; see :func:`embtune.api.encode` for the options.

    >>> embtune.encode(["How do I top up my card?"]).shape
    (1, 384)
    """
    from embtune.api import encode as run

    return run(corpus, **options)


def evaluate(corpus, **options):
    """Metrics of a model (or vectors) on a corpus; see :func:`embtune.api.evaluate` for the options.

    >>> embtune.evaluate("train.jsonl", test="test.jsonl").metrics["v_measure"]
    """
    from embtune.api import evaluate as run

    return run(corpus, **options)


def tune(corpus, **options):
    """Fit a tuner on frozen vectors and compare it with the base on held-out data; see :func:`embtune.api.tune`.

    >>> embtune.tune("tickets.jsonl", method="infonce", positives="neighbors", output="tuner/").delta()
    """
    from embtune.api import tune as run

    return run(corpus, **options)


def finetune(corpus, **options):
    """Fine-tune the whole model and export it; see :func:`embtune.api.finetune` for the options.

    >>> embtune.finetune("tickets.jsonl", objective="augment", output="out/", max_steps=200).after
    """
    from embtune.api import finetune as run

    return run(corpus, **options)


def auto(corpus, **options):
    """Try label-free candidates within a budget and keep what held-out scores prove better (or the base model);
    see :func:`embtune.auto_select.auto`.

    >>> embtune.auto("tickets.jsonl", output="auto/", budget_minutes=20).chosen
    """
    from embtune.auto_select import auto as run

    return run(corpus, **options)


_LAZY = {
    "AutoResult": "embtune.auto_select",
    "encode_corpus": "embtune.api",
    "Evaluation": "embtune.api",
    "TuneResult": "embtune.api",
    "FinetuneResult": "embtune.api",
    "EncodeResult": "embtune.api",
    "read_corpus": "embtune.data",
    "read_pairs": "embtune.data",
    "load_encoder": "embtune.encoders",
    "evaluate_vectors": "embtune.evaluation.metrics",
    "Metrics": "embtune.evaluation.metrics",
    "EmbtuneError": "embtune.errors",
    "SbertLearner": "embtune.training.sbert_learner",
}

__getattr__, _names = lazy_exports(__name__, _LAZY)
__all__ = sorted([*_names, "auto", "encode", "evaluate", "finetune", "tune", "__version__"])
