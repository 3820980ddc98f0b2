"""What the exported text backends share (ONNX Runtime, OpenVINO): a sentence-transformers model exported once per
model fingerprint into ``<embtune cache>/<runtime>/``, checked against its own torch vectors, then run without torch.

Model folders are often read-only (inside a pip package), hence the cache. Every export is checked before it is used:
``check_texts`` (the first ``CHECK_TEXTS`` texts of the bundled demo corpus, or texts of the user's corpus that the
export was not calibrated on) are encoded with torch and with the export, and an export whose mean cosine to the torch
vectors falls below ``min_cosine`` (default 0.99) is refused with the number. The check is stored beside the export, so
it runs once.

A subclass says how to build its file (``_build``), open it (``_new_session``) and run one batch of token ids
(``_infer``); this module does the rest: the token-length batches, the check, the cache folder, the refusal.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embtune.atomic import atomic_write_text
from embtune.data.vectors import l2_normalize
from embtune.encoders.cache import VectorCache, default_cache_dir
from embtune.encoders.sentence_transformer import SentenceTransformerEncoder, model_features
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
DEFAULT_MIN_COSINE = 0.99
CHECK_TEXTS = 256
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def demo_texts() -> list[str]:
    """Every text of the bundled demo corpus."""
    from embtune.data import demo_corpus_path
    from embtune.data.corpus import read_corpus

    return read_corpus(demo_corpus_path(), label_field=None).texts


def mean_cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    cos = np.sum(l2_normalize(a) * l2_normalize(b), axis=1)
    return float(cos.mean()), float(cos.min())


class ExportedEncoder:
    """A sentence-transformers text model run by another runtime; the same vectors within the checked tolerance."""

    modality = "text"
    runtime = ""  # the cache subfolder and the name users see ("onnx", "openvino")
    variants: tuple[str, ...] = ()
    extra = ""  # the pip extra that installs the runtime

    def __init__(self, path: str | Path, *, name: str | None = None, variant: str, min_cosine: float = DEFAULT_MIN_COSINE,
                 cache: VectorCache | None = None, export_dir: str | Path | None = None, threads: int | None = None):
        if variant not in self.variants:
            raise EmbtuneError(f"--backend {variant!r}: use one of {', '.join(BACKENDS)}")
        self.torch_encoder = SentenceTransformerEncoder(path, name=name, device="cpu", cache=cache)
        self.path = self.torch_encoder.path
        self.variant = variant
        self.min_cosine = float(min_cosine)
        self.threads = threads
        self._export_root = Path(export_dir) if export_dir is not None else default_cache_dir() / self.runtime
        self._session = None
        self._dim: int | None = None
        self.check: dict | None = None

    # -- what a subclass provides -------------------------------------------------------------------------------------

    def _build(self, tmp: Path) -> list[Path]:
        """Write the export into the empty folder ``tmp``; the files it made, the model file first."""
        raise NotImplementedError

    def _new_session(self, model_file: Path):
        raise NotImplementedError

    def _infer(self, session, feed: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _require_runtime(self) -> None:
        raise NotImplementedError

    @property
    def file_stem(self) -> str:
        """The export's file name without suffix inside ``export_dir`` (a variant may add what it was built from)."""
        return self.variant

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The export's files, model file first (``.onnx``; OpenVINO's ``.xml`` + ``.bin``)."""
        raise NotImplementedError

    @property
    def check_stem(self) -> str:
        """The check file's name without ``.check.json`` (a variant may add what the check depends on)."""
        return self.file_stem

    def check_texts(self) -> list[str]:
        return demo_texts()[:CHECK_TEXTS]

    # -- shared ------------------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.torch_encoder.name} ({self.variant})"

    @property
    def fingerprint(self) -> str:
        return f"{self.torch_encoder.fingerprint}|{self.file_stem}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self.torch_encoder.dim
        return self._dim

    @property
    def export_dir(self) -> Path:
        return self._export_root / self.torch_encoder.fingerprint[:24]

    def _files(self) -> list[Path]:
        return [self.export_dir / f"{self.file_stem}{suffix}" for suffix in self.suffixes]

    def _checked_model(self) -> Path:
        """The exported model file, built and checked on first use; refused when it strays from torch."""
        self.export_dir.mkdir(parents=True, exist_ok=True)
        files = self._files()
        check_file = self.export_dir / f"{self.check_stem}.check.json"
        if not all(f.exists() for f in files):
            check_file.unlink(missing_ok=True)
            with tempfile.TemporaryDirectory(dir=self.export_dir, prefix=".build-") as tmp:
                log.info("exporting %s for %s (%s), once; cached in %s", self.torch_encoder.name, self.runtime,
                         self.variant, self.export_dir)
                built = self._build(Path(tmp))
                # the model file last: its presence is what says the export is complete
                for source, target in reversed(list(zip(built, files))):
                    source.replace(target)
        try:
            check = json.loads(check_file.read_text())
        except (OSError, ValueError):
            texts = self.check_texts()
            session = self._new_session(files[0])
            mean, worst = mean_cosine(self._run(session, texts, 64), self.torch_encoder.encode(texts, normalize=False))
            check = {"texts": len(texts), "mean_cosine": mean, "min_cosine": worst}
            atomic_write_text(check_file, json.dumps(check))
        self.check = check
        if check["mean_cosine"] < self.min_cosine:
            raise EmbtuneError(
                f"the {self.variant} export of {self.torch_encoder.name} strays too far from its torch vectors: mean cosine "
                f"{check['mean_cosine']:.4f} < {self.min_cosine} on {check['texts']} check texts; use --backend "
                f"{self.runtime} or torch, or lower --min-cosine if you accept it"
            )
        log.info("%s: %s export checked against torch: mean cosine %.4f (min %.4f) on %d texts", self.torch_encoder.name,
                 self.variant, check["mean_cosine"], check["min_cosine"], check["texts"])
        return files[0]

    @property
    def session(self):
        if self._session is None:
            self._require_runtime()
            self._session = self._new_session(self._checked_model())
        return self._session

    def _batches(self, texts: list[str], batch_size: int):
        """(row indices, feed) for batches of texts with the same token count (longest first), through the model's own
        tokenizer: the same token ids as the torch backend, almost no padding."""
        model = self.torch_encoder.model
        order = self.torch_encoder._longest_first(texts)
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            features = model_features(model, [texts[i] for i in index])
            yield index, {n: features[n].numpy().astype(np.int64) for n in INPUTS if n in features}

    def _run(self, session, texts: list[str], batch_size: int, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for index, feed in self._batches(texts, batch_size):
            out[index] = self._infer(session, feed)
            if on_batch is not None:
                on_batch(len(index))
        return out

    def encode(self, items: Sequence[str], *, batch_size: int = 64, normalize: bool = True,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        items = list(items)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._run(self.session, items, batch_size, on_batch)
        return l2_normalize(vectors) if normalize else vectors

    def module(self):
        raise EmbtuneError(f"--backend {self.variant} is for encoding only; fine-tune with --backend torch (the default)")

    def save(self, path: str | Path) -> None:
        self.torch_encoder.save(path)
