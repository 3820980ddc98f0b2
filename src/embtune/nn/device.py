"""The one device resolver: ``auto`` means the GPU (CUDA or Apple MPS) when torch sees one, else the CPU.

Encoders, tuners, training and the classifiers all call it, so ``--device`` means the same everywhere."""

from __future__ import annotations

from pathlib import Path

from embtune.errors import EmbtuneError


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX or AVX-512 BF16), where bf16 autocast pays off on the CPU."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` or ``mps`` when available, else ``cpu``; an explicit device that is absent is an error.

    >>> resolve_device("auto")
    'cpu'
    """
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device in ("cpu", "meta"):  # meta: shapes only (load_tuner checks a saved tuner's shapes on it)
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else f"CUDA {torch.version.cuda} but no GPU visible"
            raise EmbtuneError(f"--device {device}: torch {torch.__version__} has {build}; use --device cpu or auto")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise EmbtuneError(f"--device {device}: there are {torch.cuda.device_count()} GPU(s) (cuda:0 ...)")
        return device
    if device == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise EmbtuneError("--device mps: Apple MPS is not available here; use --device cpu or auto")
        return device
    raise EmbtuneError(f"--device {device!r}: use auto, cpu, cuda, cuda:N or mps")
