"""The packaged all-MiniLM-L6-v2 on real data: the external STS-B check and the demo users run first."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import embtune
from conftest import shared_data
from embtune.cli import app

pytestmark = pytest.mark.slow  # the shipped model on real data (the demo, STS-B)


MTEB_STSB_MINILM = 0.8203  # MTEB's published STS-B test cosine Spearman for all-MiniLM-L6-v2


def test_stsb_spearman_matches_published_figure():
    stsb = shared_data("stsb", "test.jsonl")
    result = embtune.evaluate(stsb, text_field="text1", pairs=stsb, k=10, seeds=1)
    assert result.metrics.info["pairs"] == 1379
    assert result.metrics["sts_spearman"] == pytest.approx(MTEB_STSB_MINILM, abs=0.005)


def test_demo_runs_and_explains_its_numbers(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "-o", str(out), "--budget-minutes", "1.5"])
    assert result.exit_code == 0, result.output
    assert "How to read this" in result.stdout
    assert "v_measure" in result.stdout and "logreg_accuracy" in result.stdout
    # It ends with `embtune auto`: the candidate table, the choice, and where the report is.
    assert "tuner:spectral" in result.stdout and "tuner:infonce-neighbors" in result.stdout
    assert "never used to make it" in result.stdout
    assert ("Chose " in result.stdout) != ("Kept the base model" in result.stdout)
    assert f"{out / 'report.html'}" in result.stdout.replace("\n", "")
    table = json.loads((out / "auto.json").read_text())
    assert table["labels_used_to_choose"] is False and len(table["candidates"]) == 6  # base, 4 tuners, 1 fine-tune
    assert (out / "report.html").stat().st_size > 10_000
