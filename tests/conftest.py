from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMBTUNE_SHARED_DATA", ROOT / ".." / "shared" / "data")).resolve()
DEMO = ROOT / "src" / "embtune" / "data" / "demo_corpus" / "banking77_demo.jsonl"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty vector cache, so no test depends on another's leftovers."""
    cache_dir = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EMBTUNE_CACHE_DIR", str(cache_dir))
    return cache_dir


@pytest.fixture(autouse=True)
def reset_embtune_logger():
    """The CLI, run in-process, sets the "embtune" logger's level (--quiet: WARNING), the root logger's level and (with
    --quiet) the warning filters; later tests start from what they were."""
    import logging
    import warnings

    root_level = logging.getLogger().level
    filters = list(warnings.filters)
    yield
    logging.getLogger("embtune").setLevel(logging.NOTSET)
    logging.getLogger().setLevel(root_level)
    warnings.filters[:] = filters


@pytest.fixture(scope="session")
def demo_rows() -> list[dict]:
    return [json.loads(line) for line in DEMO.read_text().splitlines()]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, demo_rows) -> Path:
    """A 2-layer BERT (hidden 32) with a tokenizer trained on the demo texts, saved as a sentence-transformers folder."""
    from tiny_models import build_tiny_sentence_model

    return build_tiny_sentence_model(tmp_path_factory.mktemp("tiny"), [r["text"] for r in demo_rows])


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"shared dataset not found at {path} (set EMBTUNE_SHARED_DATA)"
        if os.environ.get("EMBTUNE_REQUIRE_SHARED_DATA"):
            pytest.fail(message)  # CI has ../shared: a missing dataset there is a broken setup, not a skip
        pytest.skip(message)
    return path
