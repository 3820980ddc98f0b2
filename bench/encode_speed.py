"""CPU encoding speed of embtune's backends against plain sentence-transformers, same run, same texts.

Backends: plain ``SentenceTransformer.encode`` (its defaults: batch 32, sorted by length), embtune torch (token-length
batches of 64), embtune onnx (ONNX Runtime fp32, fused graph), onnx-int8 (per-channel dynamic int8), openvino (bf16 on a
CPU with bf16 units, else fp32) and openvino-int8 (NNCF static int8, calibrated on a spread sample of the same texts, as
``embtune encode`` calibrates on the corpus it encodes), all on the same 5,000 BANKING77 train texts, all-MiniLM-L6-v2. Rounds alternate between the backends (this machine's speed drifts), and
each backend's rate is its best round. The one-off ONNX export (with its check against torch) is timed separately.
Quality: STS-B test Spearman (cosine vs gold score, 1,379 pairs) for each backend, and the mean / min cosine of each
backend's vectors to plain sentence-transformers' on the 5,000 texts.

With ``--nproc N`` (N >= 2) two more rows: embtune torch and onnx-int8 in N worker processes (``embtune encode --nproc``),
the cores shared out between them.

The CPU's vector extensions (``lscpu`` flags: avx2, avx512f, avx512_vnni, avx_vnni, avx512_bf16, amx_bf16, amx_int8)
are printed with the figures. To measure what a CPU without AMX (or without AVX-512) would do on this one, cap the
libraries' instruction sets: ``ONEDNN_MAX_CPU_ISA`` (oneDNN: torch's and OpenVINO's kernels) and
``MKL_ENABLE_INSTRUCTIONS`` (MKL: torch's fp32 matmuls), with ``--openvino-precision f32`` (OpenVINO picks bf16 from
CPUID, which the caps do not change). ONNX Runtime's own kernels ignore both caps, so capped runs leave its rows out:

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI MKL_ENABLE_INSTRUCTIONS=AVX512 .venv/bin/python bench/encode_speed.py \
        --backends torch,openvino,openvino-int8 --openvino-precision f32       # AVX-512 VNNI, no AMX
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ...                    # AVX2 only

Usage: .venv/bin/python bench/encode_speed.py [--texts 5000] [--rounds 3] [--batch-size 64] [--nproc N]
                                              [--backends torch,onnx,onnx-int8,openvino,openvino-int8]
                                              [--openvino-precision bf16|f32] [--out NAME]
       results: bench/results/encode_speed.json (or NAME.json)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
CAPS = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_description() -> dict:
    """The CPU's model name, its vector extensions among VECTOR_FLAGS, and any instruction-set caps in force."""
    from embtune.encoders.openvino import cpu_flags

    flags = cpu_flags()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {"model": model, "vector_flags": [f for f in VECTOR_FLAGS if f in flags],
            "caps": {c: os.environ[c] for c in CAPS if os.environ.get(c)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nproc", type=int, default=1, help="also time N worker processes (N >= 2)")
    parser.add_argument("--backends", default="torch,onnx,onnx-int8,openvino,openvino-int8")
    parser.add_argument("--openvino-precision", choices=("bf16", "f32"), default=None,
                        help="OpenVINO's precision [default: its own choice for this CPU]")
    parser.add_argument("--out", default="encode_speed")
    args = parser.parse_args()
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}; vector extensions: {' '.join(cpu['vector_flags'])}"
          + (f"; caps: {cpu['caps']}" if cpu["caps"] else ""), flush=True)

    from embtune.encoders import load_encoder, resolve_model
    from embtune.encoders.openvino import OpenVinoEncoder

    rows = [json.loads(line) for line in (DATA / "banking77" / "train.jsonl").read_text().splitlines()]
    texts = [r["text"] for r in rows[: args.texts]]
    sts = [json.loads(line) for line in (DATA / "stsb" / "test.jsonl").read_text().splitlines()]

    # no vector cache: every backend encodes every text
    backends = args.backends.split(",")
    encoders = {}
    for name in ["torch"] + [b for b in backends if b != "torch"]:
        if name.startswith("openvino"):  # built here to pass the precision; int8 calibrates on these texts
            encoders[name] = OpenVinoEncoder(resolve_model("all-MiniLM-L6-v2").path, name="all-MiniLM-L6-v2", variant=name,
                                             calibration=texts, precision=args.openvino_precision)
        else:
            encoders[name] = load_encoder("all-MiniLM-L6-v2", backend=name)
    plain = encoders["torch"].model  # the SentenceTransformer itself
    exported = [n for n in encoders if n != "torch"]

    export_seconds = {}
    for name in exported:
        start = time.perf_counter()
        encoders[name].encode(texts[:8])  # export (once per machine), check against torch, load the session
        export_seconds[name] = round(time.perf_counter() - start, 1)

    runners = {"sentence-transformers": lambda t: plain.encode(t, show_progress_bar=False, convert_to_numpy=True)}
    for name, encoder in encoders.items():
        if name in backends:
            runners[f"embtune {name}"] = lambda t, e=encoder: e.encode(t, batch_size=args.batch_size)
    pools = []
    if args.nproc > 1:
        from embtune.encoders.multiprocess import ProcessPoolEncoder

        for name in [b for b in ("torch", "onnx-int8") if b in encoders]:
            pool = ProcessPoolEncoder(encoders[name], processes=args.nproc, model="all-MiniLM-L6-v2", device="cpu",
                                      backend=name)
            pools.append(pool)
            runners[f"embtune {name} x{args.nproc} proc"] = lambda t, e=pool: e.encode(t, batch_size=args.batch_size)
    for run in runners.values():
        run(texts[:64])  # warm up

    seconds = {name: [] for name in runners}
    vectors = {}
    for r in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            vectors[name] = run(texts)
            seconds[name].append(time.perf_counter() - start)
            print(f"round {r + 1}: {name:24s} {len(texts) / seconds[name][-1]:7.1f} texts/s", flush=True)

    reference = vectors["sentence-transformers"]
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    table = {}
    for name, run in runners.items():
        v = vectors[name] / np.linalg.norm(vectors[name], axis=1, keepdims=True)
        cos = (v * reference).sum(1)
        a, b = run([p["text1"] for p in sts]), run([p["text2"] for p in sts])
        sims = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        table[name] = {
            "texts_per_s": round(len(texts) / min(seconds[name]), 1),
            "speedup_vs_sentence_transformers": round(min(seconds["sentence-transformers"]) / min(seconds[name]), 2),
            "sts_spearman": round(100 * spearmanr(sims, [p["score"] for p in sts]).statistic, 2),
            "mean_cosine_to_st": round(float(cos.mean()), 5), "min_cosine_to_st": round(float(cos.min()), 5),
        }
    base_sts = table["sentence-transformers"]["sts_spearman"]
    for row in table.values():
        row["sts_delta"] = round(row["sts_spearman"] - base_sts, 2)
    out = {"texts": len(texts), "rounds": args.rounds, "batch_size": args.batch_size, "nproc": args.nproc,
           "cpu_count": os.cpu_count(), "cpu": cpu, "export_seconds": export_seconds,
           "check": {n: encoders[n].check for n in exported},
           "names": {n: encoders[n].name for n in encoders}, "backends": table}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'backend':24s} {'texts/s':>8s} {'vs ST':>6s} {'STS-B':>6s} {'dSTS':>6s} {'cos mean':>9s} {'cos min':>8s}")
    for name, row in table.items():
        print(f"{name:24s} {row['texts_per_s']:8.1f} {row['speedup_vs_sentence_transformers']:6.2f} "
              f"{row['sts_spearman']:6.2f} {row['sts_delta']:+6.2f} {row['mean_cosine_to_st']:9.5f} {row['min_cosine_to_st']:8.5f}")
    print(f"export (once): {export_seconds}")
    print(f"CPU: {cpu['model']}; vector extensions: {' '.join(cpu['vector_flags'])}"
          + (f"; caps: {cpu['caps']}" if cpu["caps"] else "") + f"; {os.cpu_count()} cores")
    print("names:", {n: encoders[n].name for n in encoders})
    for pool in pools:
        pool.close()


if __name__ == "__main__":
    main()
