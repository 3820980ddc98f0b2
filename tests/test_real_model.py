"""The packaged all-MiniLM-L6-v2 on real data: the external STS-B check and the demo users run first."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import embtune
from conftest import shared_data
from embtune.cli import app

MTEB_STSB_MINILM = 0.8203  # MTEB's published STS-B test cosine Spearman for all-MiniLM-L6-v2


def test_stsb_spearman_matches_published_figure():
    stsb = shared_data("stsb", "test.jsonl")
    result = embtune.evaluate(stsb, text_field="text1", pairs=stsb, k=10, seeds=1)
    assert result.metrics.info["pairs"] == 1379
    assert result.metrics["sts_spearman"] == pytest.approx(MTEB_STSB_MINILM, abs=0.005)


def test_demo_runs_and_explains_its_numbers():
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "How to read this" in result.stdout
    assert "v_measure" in result.stdout and "logreg_accuracy" in result.stdout
    second = CliRunner().invoke(app, ["demo", "--quiet"])  # cached: same numbers
    assert second.exit_code == 0
    table = [line for line in result.stdout.splitlines() if "v_measure" in line]
    assert table == [line for line in second.stdout.splitlines() if "v_measure" in line]
