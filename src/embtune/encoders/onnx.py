"""ONNX Runtime backend for sentence-transformers text models: ``--backend onnx`` (fp32) or ``onnx-int8``.

The whole sentence-transformers pipeline after tokenisation (transformer, pooling, dense layers) is exported once with
``torch.onnx.export``; ONNX Runtime's own transformer optimizer then fuses attention, layer norms and GELU
(``onnx``), and its dynamic quantizer turns the MatMul weights into per-channel int8 (``onnx-int8``). No graph surgery of
our own: every step is a library call. Exports are cached per model fingerprint in ``<embtune cache>/onnx/`` (model
folders are often read-only, e.g. inside a pip package) and reused by every later run.

Every export is checked before it is used: the first ``CHECK_TEXTS`` texts of the bundled demo corpus are encoded with
torch and with the export, and an export whose mean cosine to the torch vectors falls below ``min_cosine`` (default
0.99) is refused with the number. The check is stored beside the export, so it runs once.

Why not sentence-transformers' ``backend="onnx"``: it needs ``optimum-onnx``, which pins transformers < 4.58, and the
sentence-transformers here needs transformers 5.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embtune.atomic import atomic_write_text
from embtune.data.vectors import l2_normalize
from embtune.encoders.cache import VectorCache, default_cache_dir
from embtune.encoders.sentence_transformer import SentenceTransformerEncoder
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_MIN_COSINE = 0.99
CHECK_TEXTS = 256
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17


def _require_onnxruntime():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise EmbtuneError(
            "--backend onnx needs onnxruntime and onnx, which are not installed; run `pip install 'embtune[onnx]'`"
        ) from None
    return onnxruntime


def _check_texts() -> list[str]:
    from embtune.data import demo_corpus_path
    from embtune.data.corpus import read_corpus

    return read_corpus(demo_corpus_path(), label_field=None).texts[:CHECK_TEXTS]


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    cos = np.sum(l2_normalize(a) * l2_normalize(b), axis=1)
    return float(cos.mean()), float(cos.min())


class OnnxEncoder:
    """A sentence-transformers text model run by ONNX Runtime; same vectors (within the checked tolerance), no torch
    at encode time.

    >>> enc = OnnxEncoder(resolve_model("all-MiniLM-L6-v2").path, name="all-MiniLM-L6-v2", variant="onnx-int8")
    >>> enc.encode(["hello world"]).shape
    (1, 384)
    """

    modality = "text"

    def __init__(self, path: str | Path, *, name: str | None = None, variant: str = "onnx",
                 min_cosine: float = DEFAULT_MIN_COSINE, cache: VectorCache | None = None,
                 export_dir: str | Path | None = None, threads: int | None = None):
        if variant not in ("onnx", "onnx-int8"):
            raise EmbtuneError(f"--backend {variant!r}: use one of {', '.join(BACKENDS)}")
        self.torch_encoder = SentenceTransformerEncoder(path, name=name, device="cpu", cache=cache)
        self.path = self.torch_encoder.path
        self.name = f"{self.torch_encoder.name} ({variant})"
        self.variant = variant
        self.min_cosine = float(min_cosine)
        self.threads = threads
        self._export_root = Path(export_dir) if export_dir is not None else default_cache_dir() / "onnx"
        self._session = None
        self._dim: int | None = None
        self.check: dict | None = None

    @property
    def fingerprint(self) -> str:
        return f"{self.torch_encoder.fingerprint}|{self.variant}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self.torch_encoder.dim
        return self._dim

    @property
    def export_dir(self) -> Path:
        return self._export_root / self.torch_encoder.fingerprint[:24]

    # -- export ------------------------------------------------------------------------------------------------------

    def _export_fp32(self, target: Path) -> None:
        import torch

        model = self.torch_encoder.model
        transformer = model[0].auto_model
        # Exported with the plain ("eager") attention so ONNX Runtime's optimizer recognises and fuses it.
        previous = getattr(transformer.config, "_attn_implementation", None)
        if hasattr(transformer, "set_attn_implementation"):
            transformer.set_attn_implementation("eager")
        features = model.tokenize(["an example sentence for the export", "another one"])
        names = [n for n in _INPUTS if n in features]

        class Pipeline(torch.nn.Module):
            def __init__(self, st):
                super().__init__()
                self.st = st

            def forward(self, *tensors):
                return self.st(dict(zip(names, tensors)))["sentence_embedding"]

        axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"sentence_embedding": {0: "batch"}}
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes about shapes: the export is checked against torch below
                torch.onnx.export(Pipeline(model).eval(), tuple(features[n] for n in names), str(target), dynamo=False,
                                  input_names=names, output_names=["sentence_embedding"], dynamic_axes=axes,
                                  opset_version=_OPSET)
        except Exception as e:
            raise EmbtuneError(f"{self.torch_encoder.name} could not be exported to ONNX ({type(e).__name__}: {e}); "
                               "use --backend torch") from None
        finally:
            if previous and hasattr(transformer, "set_attn_implementation"):
                transformer.set_attn_implementation(previous)

    def _optimize(self, source: Path, target: Path) -> None:
        from onnxruntime.transformers.optimizer import optimize_model

        config = self.torch_encoder.model[0].auto_model.config
        heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
        model_type = "bert" if getattr(config, "model_type", "") in ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert") else None
        if model_type is None:  # an architecture the fusions do not know: ONNX Runtime's generic graph optimisations only
            shutil.copyfile(source, target)
            return
        optimized = optimize_model(str(source), model_type=model_type, num_heads=heads, hidden_size=hidden, opt_level=1)
        optimized.save_model_to_file(str(target))
        log.debug("onnx fusions: %s", optimized.get_fused_operator_statistics())

    def _quantize(self, source: Path, target: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel weights on MatMul only: per-tensor int8 loses ~3 % cosine on MiniLM (mean 0.969), per-channel
        # keeps 0.994 (measured on BANKING77 test texts).
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs a generic "consider pre-processing" warning on the root logger
        try:
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"], extra_options={"DefaultTensorType": 1})
        finally:
            root.setLevel(level)

    def _build(self, final: Path) -> None:
        with tempfile.TemporaryDirectory(dir=self.export_dir, prefix=".build-") as tmp:
            tmp = Path(tmp)
            log.info("exporting %s to ONNX (%s), once; cached in %s", self.torch_encoder.name, self.variant, self.export_dir)
            self._export_fp32(tmp / "raw.onnx")
            self._optimize(tmp / "raw.onnx", tmp / "fp32.onnx")
            if self.variant == "onnx-int8":
                self._quantize(tmp / "fp32.onnx", tmp / "int8.onnx")
            os.replace(tmp / ("int8.onnx" if self.variant == "onnx-int8" else "fp32.onnx"), final)

    def _checked_model(self) -> Path:
        """The exported model file, built and checked on first use; refused when it strays from torch."""
        self.export_dir.mkdir(parents=True, exist_ok=True)
        model_file = self.export_dir / f"{self.variant}.onnx"
        check_file = self.export_dir / f"{self.variant}.check.json"
        if not model_file.exists():
            check_file.unlink(missing_ok=True)
            self._build(model_file)
        try:
            check = json.loads(check_file.read_text())
        except (OSError, ValueError):
            texts = _check_texts()
            session = self._new_session(model_file)
            mean, worst = _mean_cosine(self._run(session, texts, 64), self.torch_encoder.encode(texts, normalize=False))
            check = {"texts": len(texts), "mean_cosine": mean, "min_cosine": worst}
            atomic_write_text(check_file, json.dumps(check))
        self.check = check
        if check["mean_cosine"] < self.min_cosine:
            raise EmbtuneError(
                f"the {self.variant} export of {self.torch_encoder.name} strays too far from its torch vectors: mean cosine "
                f"{check['mean_cosine']:.4f} < {self.min_cosine} on {check['texts']} check texts; use --backend onnx or "
                "torch, or lower --min-cosine if you accept it"
            )
        log.info("%s: %s export checked against torch: mean cosine %.4f (min %.4f) on %d texts", self.torch_encoder.name,
                 self.variant, check["mean_cosine"], check["min_cosine"], check["texts"])
        return model_file

    # -- encode ------------------------------------------------------------------------------------------------------

    def _new_session(self, model_file: Path):
        ort = _require_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    @property
    def session(self):
        if self._session is None:
            _require_onnxruntime()
            self._session = self._new_session(self._checked_model())
        return self._session

    def _run(self, session, texts: list[str], batch_size: int, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        model = self.torch_encoder.model  # its tokenizer and max length: the same token ids as the torch backend
        wanted = {i.name for i in session.get_inputs()}
        order = self.torch_encoder._longest_first(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            features = model.tokenize([texts[i] for i in index])
            feed = {n: features[n].numpy().astype(np.int64) for n in _INPUTS if n in wanted}
            out[index] = session.run(None, feed)[0]
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
