"""The Python verbs mirror the CLI."""

from __future__ import annotations

import numpy as np
import pytest

import embtune
from embtune.errors import EmbtuneError


def test_verbs_are_functions_and_packages_are_nouns():
    """The verbs (embtune.evaluate, embtune.finetune) are the public functions whatever has been imported; the
    packages that hold the work are named as nouns, so no import can shadow a verb."""
    import inspect

    import embtune.evaluation.clustering  # noqa: F401
    import embtune.training.trainer as trainer

    for verb in ("encode", "evaluate", "tune", "finetune", "auto"):
        assert inspect.isfunction(getattr(embtune, verb)) and getattr(embtune, verb).__module__ == "embtune", verb
    assert inspect.ismodule(trainer) and trainer.__name__ == "embtune.training.trainer"


def test_encode_texts_and_file_agree(tiny_model, tmp_path):
    texts = ["where is my card", "top up failed", "exchange rate"]
    (tmp_path / "c.txt").write_text("\n".join(texts))
    from_list = embtune.encode(texts, model=str(tiny_model))
    from_file = embtune.encode(tmp_path / "c.txt", model=str(tiny_model), output=tmp_path / "v.npy")
    np.testing.assert_allclose(from_list, from_file, atol=1e-6)
    assert isinstance(from_file, np.memmap)


def test_encode_refuses_a_bare_string():
    with pytest.raises(EmbtuneError, match="not a corpus file"):
        embtune.encode("where is my card")


def test_evaluate_on_texts_without_labels(tiny_model, demo_rows):
    result = embtune.evaluate([r["text"] for r in demo_rows[:200]], model=str(tiny_model), k=8, seeds=2)
    assert result.metrics.info["k"] == 8 and "silhouette" in result.metrics
    assert "v_measure" not in result.metrics
    assert result.to_dict()["n_texts"] == 200
