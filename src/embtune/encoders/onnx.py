"""ONNX Runtime backend for sentence-transformers text models: ``--backend onnx`` (fp32) or ``onnx-int8``.

The whole sentence-transformers pipeline after tokenisation (transformer, pooling, dense layers) is exported once with
``torch.onnx.export``; ONNX Runtime's own transformer optimizer then fuses attention, layer norms and GELU
(``onnx``), and its dynamic quantizer turns the MatMul weights into per-channel int8 (``onnx-int8``). No graph surgery of
our own: every step is a library call. The export cache and the check against torch are
:mod:`embtune.encoders.exported`'s.

Static int8 (QDQ, calibrated on corpus texts) was tried and is not offered: ONNX Runtime 1.32 left the QDQ pairs of this
graph unfused and ran at 460 texts/s against 604 for fp32 and 1,025 for dynamic int8 (all-MiniLM-L6-v2, 3,000
BANKING77 texts, 2 threads, avx512_vnni + amx CPU); ``--backend openvino-int8`` is the static int8 path.

Why not sentence-transformers' ``backend="onnx"``: it needs ``optimum-onnx``, which pins transformers < 4.58, and the
sentence-transformers here needs transformers 5.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np

from embtune.encoders.exported import DEFAULT_MIN_COSINE, INPUTS, ExportedEncoder
from embtune.encoders.sentence_transformer import model_features
from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

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


class OnnxEncoder(ExportedEncoder):
    """A sentence-transformers text model run by ONNX Runtime; same vectors (within the checked tolerance), no torch
    at encode time.

    >>> enc = OnnxEncoder(resolve_model("all-MiniLM-L6-v2").path, name="all-MiniLM-L6-v2", variant="onnx-int8")
    >>> enc.encode(["hello world"]).shape
    (1, 384)
    """

    runtime = "onnx"
    variants = ("onnx", "onnx-int8")
    suffixes = (".onnx",)

    def _require_runtime(self) -> None:
        _require_onnxruntime()

    # -- export ------------------------------------------------------------------------------------------------------

    def _export_fp32(self, target: Path) -> None:
        import torch

        model = self.torch_encoder.model
        transformer = model[0].auto_model
        # Exported with the plain ("eager") attention so ONNX Runtime's optimizer recognises and fuses it.
        previous = getattr(transformer.config, "_attn_implementation", None)
        if hasattr(transformer, "set_attn_implementation"):
            transformer.set_attn_implementation("eager")
        features = model_features(model, ["an example sentence for the export", "another one"])
        names = [n for n in INPUTS if n in features]

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

    def _build(self, tmp: Path) -> list[Path]:
        self._export_fp32(tmp / "raw.onnx")
        self._optimize(tmp / "raw.onnx", tmp / "fp32.onnx")
        if self.variant == "onnx-int8":
            self._quantize(tmp / "fp32.onnx", tmp / "int8.onnx")
            return [tmp / "int8.onnx"]
        return [tmp / "fp32.onnx"]

    # -- encode ------------------------------------------------------------------------------------------------------

    def _new_session(self, model_file: Path):
        ort = _require_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    def _infer(self, session, feed: dict[str, np.ndarray]) -> np.ndarray:
        wanted = {i.name for i in session.get_inputs()}
        return session.run(None, {n: a for n, a in feed.items() if n in wanted})[0]


__all__ = ["DEFAULT_MIN_COSINE", "OnnxEncoder"]
