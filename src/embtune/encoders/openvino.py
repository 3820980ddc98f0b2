"""OpenVINO backend for sentence-transformers text models: ``--backend openvino`` or ``openvino-int8``.

- ``openvino``: the whole sentence-transformers pipeline after tokenisation converted from torch once
  (``openvino.convert_model``, weights kept fp32) and compiled at OpenVINO's default CPU precision: bfloat16 on a CPU
  with bf16 units (AMX or AVX-512 BF16), fp32 elsewhere. The vectors differ from torch's in the fifth decimal
  (mean cosine 0.99999 on all-MiniLM-L6-v2).
- ``openvino-int8``: that model with static int8 quantisation (NNCF post-training quantisation, transformer preset:
  int8 weights per channel and int8 activations at every MatMul, the attention products included) **calibrated on
  ``CALIBRATION_TEXTS`` texts of the user's own corpus**, spread over it. Static scales need no per-batch
  re-quantisation of the activations, which is what held ONNX Runtime's dynamic int8 at ~2x. A different corpus gets its
  own calibration, export and fingerprint (the calibration texts are part of it), so vectors from two calibrations never
  mix in the vector cache. Without a corpus (a plain Python ``load_encoder``) it calibrates on the bundled demo corpus.
  The check against torch runs on texts of the same sample that the calibration did not see. The ops left in float
  run in fp32.

Measured on all-MiniLM-L6-v2 (bench/encode_speed.py prints the figures with the CPU flags): int8 pays off on CPUs with
VNNI (AVX-512 VNNI or AVX-VNNI); on a plain AVX2 CPU int8 was slower than fp32, so :func:`int8_note` says so.

Exports and checks are cached per model fingerprint in ``<embtune cache>/openvino/`` (see
:mod:`embtune.encoders.exported`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embtune.encoders.exported import CHECK_TEXTS, INPUTS, ExportedEncoder, demo_texts
from embtune.encoders.sentence_transformer import model_features
from embtune.errors import EmbtuneError
from embtune.nn.device import cpu_flags

log = logging.getLogger(__name__)

CALIBRATION_TEXTS = 300  # NNCF's default subset size
SAMPLE_TEXTS = 2 * CALIBRATION_TEXTS  # what callers pass: every other text calibrates, the rest check (up to 256)
_MIN_OWN_TEXTS = 40  # a corpus smaller than this calibrates on the demo corpus instead


def _no_telemetry() -> None:
    """OpenVINO's converter and NNCF send usage statistics through ``openvino_telemetry`` whenever it imports and no
    consent file says otherwise (both call it with the consent dialog off, where a missing file counts as consent).
    embtune never uses the network at run time: a ``None`` in ``sys.modules`` makes that import fail, and both libraries
    then use their own no-op stubs (their documented fallback when the package is absent)."""
    sys.modules.setdefault("openvino_telemetry", None)


def _require_openvino():
    _no_telemetry()
    try:
        import openvino
    except ImportError:
        raise EmbtuneError(
            "--backend openvino needs OpenVINO, which is not installed; run `pip install 'embtune[openvino]'`"
        ) from None
    return openvino


def _require_nncf():
    _no_telemetry()
    try:
        import nncf
    except ImportError:
        raise EmbtuneError(
            "--backend openvino-int8 needs NNCF for the int8 calibration, which is not installed; run "
            "`pip install 'embtune[openvino]'`"
        ) from None
    return nncf


def spread_sample(texts: Sequence[str], n: int = SAMPLE_TEXTS) -> list[str]:
    """Up to ``n`` distinct non-empty texts spread evenly over ``texts`` (same texts in, same sample out)."""
    unique = list(dict.fromkeys(t for t in texts if t and t.strip()))
    if len(unique) <= n:
        return unique
    return [unique[int(i)] for i in np.linspace(0, len(unique) - 1, n).round().astype(int)]


def int8_note(flags: set[str] | None = None) -> str | None:
    """Why int8 may not pay off on this CPU, or None."""
    flags = cpu_flags() if flags is None else flags
    if flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return ("this CPU has no VNNI (avx512_vnni / avx_vnni): int8 encoding measured slower than fp32 on such CPUs; "
                "--backend openvino is likely faster here")
    return None


class OpenVinoEncoder(ExportedEncoder):
    """A sentence-transformers text model run by OpenVINO (bf16 or fp32, or int8 calibrated on the corpus).

    >>> enc = OpenVinoEncoder(resolve_model("all-MiniLM-L6-v2").path, variant="openvino-int8", calibration=texts)
    >>> enc.encode(texts).shape
    (len(texts), 384)
    """

    runtime = "openvino"
    variants = ("openvino", "openvino-int8")
    suffixes = (".xml", ".bin")

    def __init__(self, path: str | Path, *, calibration: Sequence[str] | None = None, precision: str | None = None,
                 **options):
        super().__init__(path, **options)
        self.precision_hint = precision  # None: OpenVINO's default for this CPU (bf16 where it has bf16 units)
        self._sample = spread_sample(calibration) if calibration is not None else []
        self._own_sample = len(self._sample) >= _MIN_OWN_TEXTS
        self._precision: str | None = None
        self._warned = False

    @property
    def calibration(self) -> list[str] | None:
        """The corpus sample this encoder was given (what a worker process needs to build the same export)."""
        return self._sample if self._own_sample else None

    def _require_runtime(self) -> None:
        _require_openvino()
        if self.variant == "openvino-int8":
            _require_nncf()

    # -- what the export is built from ---------------------------------------------------------------------------------

    def _calibration_and_check(self) -> tuple[list[str], list[str]]:
        sample = self._sample if self._own_sample else spread_sample(demo_texts())
        calibration, check = sample[0::2], sample[1::2]
        return calibration[:CALIBRATION_TEXTS], check[:CHECK_TEXTS]

    @property
    def calibration_digest(self) -> str:
        calibration, _ = self._calibration_and_check()
        return hashlib.sha256("\n".join(calibration).encode("utf-8")).hexdigest()[:12]

    @property
    def file_stem(self) -> str:
        if self.variant == "openvino-int8":
            return f"openvino-int8-{self.calibration_digest}"
        return self.variant

    @property
    def precision(self) -> str:
        """'bf16' or 'f32': what OpenVINO computes the non-int8 ops in (the vectors differ slightly between the two)."""
        if self._precision is None:
            if self.precision_hint:
                self._precision = self.precision_hint
            elif self.variant == "openvino-int8":
                # the int8 model's other ops in fp32: more exact, and faster than bf16 (1,951 vs 1,847 texts/s on an
                # AMX CPU, same run: bf16 adds reorders between the int8 and bf16 ops)
                self._precision = "f32"
            else:
                core = _require_openvino().Core()
                self._precision = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
        return self._precision

    @property
    def fingerprint(self) -> str:
        return f"{self.torch_encoder.fingerprint}|{self.file_stem}|{self.precision}"

    @property
    def name(self) -> str:
        if self.variant == "openvino-int8":
            return f"{self.torch_encoder.name} (openvino-int8)"
        return f"{self.torch_encoder.name} ({self.variant}, {self.precision})"

    @property
    def check_stem(self) -> str:
        return f"{self.file_stem}.{self.precision}"

    def check_texts(self) -> list[str]:
        return self._calibration_and_check()[1]

    # -- export ------------------------------------------------------------------------------------------------------

    def _convert(self):
        import torch

        ov = _require_openvino()
        model = self.torch_encoder.model
        features = model_features(model, ["an example sentence for the export", "another one"])
        names = [n for n in INPUTS if n in features]

        class Pipeline(torch.nn.Module):  # named inputs: OpenVINO maps the feed by the forward's argument names
            def __init__(self, st):
                super().__init__()
                self.st = st

            def forward(self, input_ids, attention_mask, token_type_ids=None):
                given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
                return self.st({n: given[n] for n in names})["sentence_embedding"]

        st_logger = logging.getLogger("sentence_transformers")
        level = st_logger.level
        st_logger.setLevel(logging.ERROR)  # tracing reads deprecated attributes, which log a note each
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes about shapes: the export is checked against torch
                return ov.convert_model(Pipeline(model).eval(), example_input={n: features[n] for n in names},
                                        input=[(n, [-1, -1], ov.Type.i64) for n in names])
        except Exception as e:
            raise EmbtuneError(f"{self.torch_encoder.name} could not be converted to OpenVINO ({type(e).__name__}: {e}); "
                               "use --backend torch") from None
        finally:
            st_logger.setLevel(level)

    def _quantize(self, ov_model):
        nncf = _require_nncf()
        calibration, _ = self._calibration_and_check()
        st = self.torch_encoder.model
        feeds = []
        for text in calibration:  # one text per feed: the ranges of real tokens, no padding in them
            features = model_features(st, [text])
            feeds.append({n: features[n].numpy().astype(np.int64) for n in INPUTS if n in features})
        log.info("calibrating int8 on %d texts of %s (about 10 s)", len(feeds),
                 "the corpus" if self._own_sample else "the demo corpus")
        # NNCF's own notes are quieted on its logger alone (nncf.set_log_level would also set the level of every
        # handler on that logger, which can be the caller's own), and its progress bars, drawn on stdout, would break
        # `--json` output and embtune's own progress display
        nncf_logger = logging.getLogger("nncf")
        level = nncf_logger.level
        nncf_logger.setLevel(logging.ERROR)
        try:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                return nncf.quantize(ov_model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                                     subset_size=len(feeds))
        finally:
            nncf_logger.setLevel(level)

    def _build(self, tmp: Path) -> list[Path]:
        ov = _require_openvino()
        model = self._convert()
        if self.variant == "openvino-int8":
            model = self._quantize(model)
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
        return [tmp / "model.xml", tmp / "model.bin"]

    # -- encode ------------------------------------------------------------------------------------------------------

    def _new_session(self, model_file: Path):
        """The compiled model: OpenVINO's throughput mode (several streams, each on its own cores), fed by
        :meth:`_run`'s ring of requests. On 2 cores its 2 single-thread streams ran 8 % faster than one 2-thread
        request in latency mode (int8 MiniLM: 1,961 vs 1,816 texts/s; bf16: 1,884 vs 1,765; same run, same texts)."""
        ov = _require_openvino()
        note = int8_note() if self.variant == "openvino-int8" and not self._warned else None
        if note:
            log.warning(note)
            self._warned = True
        config = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": self.precision}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return ov.Core().compile_model(str(model_file), "CPU", config)

    def _infer(self, session, feed: dict[str, np.ndarray]) -> np.ndarray:
        wanted = {name for port in session.inputs for name in port.get_names()}
        return np.asarray(session({n: a for n, a in feed.items() if n in wanted})[0])

    def _run(self, session, texts: list[str], batch_size: int, on_batch=None) -> np.ndarray:
        """Batches in flight on every stream: a ring of plain requests started with ``start_async`` and collected with
        ``wait``. No Python callback: OpenVINO's threads then never hold a Python object, which deadlocked the
        compiled model's teardown when ``AsyncInferQueue``'s callbacks did (its destructor joins those threads)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        wanted = {name for port in session.inputs for name in port.get_names()}
        requests = [session.create_infer_request()
                    for _ in range(max(1, int(session.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))))]
        pending: list = [None] * len(requests)  # the row indices each request is working on

        def collect(i: int) -> None:
            requests[i].wait()
            out[pending[i]] = requests[i].get_output_tensor(0).data
            if on_batch is not None:
                on_batch(len(pending[i]))
            pending[i] = None

        try:
            for n, (index, feed) in enumerate(self._batches(texts, batch_size)):
                i = n % len(requests)
                if pending[i] is not None:
                    collect(i)
                requests[i].start_async({k: a for k, a in feed.items() if k in wanted})
                pending[i] = index
            for i in range(len(requests)):
                if pending[i] is not None:
                    collect(i)
        finally:
            for i, request in enumerate(requests):
                if pending[i] is not None:  # an error above: let the request finish before it is freed
                    request.wait()
        return out


__all__ = ["CALIBRATION_TEXTS", "OpenVinoEncoder", "SAMPLE_TEXTS", "cpu_flags", "int8_note", "spread_sample"]
