"""SpectralTuner fit time at 200,000 vectors, its parts and its memory, and the V-measure it gives on BANKING77.

Corpus: every text of the shared text sets (BANKING77, HWU64, StackOverflow, SearchSnippets, biomedical, STS-B), and
word-dropout variants of them (each word kept with probability 0.8, fixed seeds) until there are ``--n`` distinct
texts, encoded once with all-MiniLM-L6-v2 (``--backend``, default openvino-int8; the vector cache keeps them for the
next run). Real sentence vectors with the near-duplicate structure a big scraped corpus has, not random points.

Each fit runs in its own process, so its peak resident memory is its own (``ru_maxrss``); the fit logs how long the
neighbour graph and the eigenvectors took. Quality: SpectralTuner fitted on BANKING77's train vectors (no labels),
test KMeans V-measure at k = 77 over 5 seeds, and how alike the fitted eigenvectors are to the previous fit's
(subspace overlap; largest principal angle between the leading halves). The corpus holds the test texts of the five
labelled sets, so each fit is also scored where it matters: their test KMeans V-measure (k = labels, 3 seeds) in the
space of the tuner fitted on all the vectors, the previous fit's beside it. (``--legacy``: HNSW M=32, graph searched at breadth 64, plain ARPACK), whose time is measured in
the same run.

Usage: .venv/bin/python bench/spectral_fit.py [--n 200000] [--sizes 60000,200000] [--backend openvino-int8] [--legacy]
       results: bench/results/spectral_fit.json
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("banking77", "hwu64", "stackoverflow", "searchsnippets", "biomedical")


def labelled_tests() -> dict[str, tuple[list[str], list]]:
    """Each labelled set's test texts and labels (all of them are in the corpus)."""
    out = {}
    for name in SETS:
        rows = [json.loads(line) for line in (DATA / name / "test.jsonl").read_text().splitlines()]
        out[name] = ([r["text"] for r in rows], [r["label"] for r in rows])
    return out


def corpus_texts(n: int) -> list[str]:
    texts = []
    for name in SETS:
        for split in ("train", "test"):
            texts += [json.loads(line)["text"] for line in (DATA / name / f"{split}.jsonl").read_text().splitlines()]
    for line in (DATA / "stsb" / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts += [row["text1"], row["text2"]]
    unique = list(dict.fromkeys(t for t in texts if t.strip()))
    rng = np.random.default_rng(0)
    base = list(unique)
    while len(unique) < n:
        for text in base:
            words = text.split()
            kept = [w for w in words if rng.random() < 0.8] or words[:1]
            unique.append(" ".join(kept))
        unique = list(dict.fromkeys(unique))
    return unique[:n]


def _peak_rss_mb() -> int:
    """This process's peak resident memory (VmHWM: per address space, so not the parent's, which ru_maxrss keeps
    across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1


def _plain_arpack(matrix, m, known=None):
    """The previous eigensolver: ARPACK on the matrix itself (embtune before the polynomial filter and before the
    components' eigenvectors were computed, ``known``, which it ignores)."""
    import scipy.sparse.linalg

    n = matrix.shape[0]
    if n < 2000 or m >= n - 1:
        values, vectors = np.linalg.eigh(matrix.toarray())
    else:
        values, vectors = scipy.sparse.linalg.eigsh(matrix, k=m, which="LA", v0=np.random.default_rng(0).standard_normal(n))
    order = np.argsort(-values)[:m]
    return values[order], vectors[:, order]


def _fit_in_child(path: str, queue, options: dict, legacy: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    import embtune.data.vectors as vectors_module
    import embtune.tuners.spectral as spectral
    from embtune.tuners.spectral import SpectralTuner

    if legacy:  # the fit as it was before: HNSW M=32, graph searched at breadth 64, plain ARPACK on A
        vectors_module.HNSW_LINKS, spectral.GRAPH_EF_SEARCH, spectral._leading_eigenpairs = 32, 64, _plain_arpack
    vectors = np.load(path)
    start = time.perf_counter()
    tuner = SpectralTuner(**options).fit(vectors)
    seconds = time.perf_counter() - start
    np.save(path + ".eig.npy", tuner.memory_.eigenvectors.numpy())
    result = {"seconds": round(seconds, 1), "peak_rss_mb": _peak_rss_mb(), "test_v": {}}
    from embtune.evaluation.clustering import cluster_metrics

    for name, (rows, labels) in json.loads(Path(path + ".tests.json").read_text()).items():
        rows = [r for r in rows if r < len(vectors)]
        if len(rows) == len(labels):  # every test text of the set is among the fitted vectors
            tuned = tuner.transform(vectors[rows])
            v = cluster_metrics(tuned, len(set(labels)), labels=labels, seeds=3)["v_measure"]
            result["test_v"][name] = round(100 * float(np.mean(v)), 2)
    queue.put(result)


def timed_fit(vectors: np.ndarray, tmp: Path, options: dict, legacy: bool = False,
              tests: dict | None = None) -> tuple[dict, np.ndarray]:
    path = str(tmp / f"v{len(vectors)}.npy")
    np.save(path, vectors)
    Path(path + ".tests.json").write_text(json.dumps(tests or {}))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_fit_in_child, args=(path, queue, options, legacy))
    child.start()
    import queue as queues

    while True:  # a child that dies (an exception, the OOM killer) must not leave the bench waiting for ever
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty:
            if not child.is_alive():
                raise SystemExit(f"the fit at {len(vectors)} vectors died (exit code {child.exitcode}); see above")
    child.join()
    return result, np.load(path + ".eig.npy")


def subspace_comparison(a: np.ndarray, b: np.ndarray) -> dict:
    """How alike the column spaces of two eigenvector sets are: the overlap (mean squared cosine of the principal
    angles; 1 = the same space) of all columns, and the largest principal angle between the leading halves (the last
    columns sit among near-equal eigenvalues, where one can swap with the next eigenvector without the space
    changing in any way that matters)."""
    def cosines(x, y):
        qx, _ = np.linalg.qr(x)
        qy, _ = np.linalg.qr(y)
        return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), -1, 1)

    half = a.shape[1] // 2
    return {"overlap": round(float(np.mean(cosines(a, b) ** 2)), 4),
            "largest_angle_leading_half_degrees": round(float(np.degrees(np.arccos(cosines(a[:, :half], b[:, :half]).min()))), 2)}


def banking77_v(options: dict) -> dict:
    from embtune.encoders import load_encoder
    from embtune.encoders.cache import VectorCache
    from embtune.encoders.encode import encode_items
    from embtune.evaluation.clustering import cluster_metrics
    from embtune.tuners.spectral import SpectralTuner

    rows = {s: [json.loads(line) for line in (DATA / "banking77" / f"{s}.jsonl").read_text().splitlines()]
            for s in ("train", "test")}
    encoder = load_encoder("all-MiniLM-L6-v2")
    cache = VectorCache()
    train, _ = encode_items(encoder, [r["text"] for r in rows["train"]], cache=cache)
    test, _ = encode_items(encoder, [r["text"] for r in rows["test"]], cache=cache)
    labels = [r["label"] for r in rows["test"]]
    base = cluster_metrics(test, 77, labels=labels, seeds=5)["v_measure"]
    tuned = cluster_metrics(SpectralTuner(**options).fit(train).transform(test), 77, labels=labels, seeds=5)["v_measure"]
    return {"base_v": round(100 * float(np.mean(base)), 2), "spectral_v": round(100 * float(np.mean(tuned)), 2),
            "spectral_v_std": round(100 * float(np.std(tuned)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--sizes", default="60000,200000")
    parser.add_argument("--backend", default="openvino-int8")
    parser.add_argument("--options", default="{}", help="SpectralTuner options as JSON")
    parser.add_argument("--legacy", action="store_true",
                        help="also fit the previous way (HNSW M=32, breadth 64, plain ARPACK) at every size")
    args = parser.parse_args()
    options = json.loads(args.options)
    import tempfile

    from embtune.encoders import load_encoder
    from embtune.encoders.cache import VectorCache
    from embtune.encoders.encode import encode_items

    flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    print("CPU vector extensions:", " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_bf16", "amx_int8")
                                            if f in flags), flush=True)
    texts = corpus_texts(args.n)
    start = time.perf_counter()
    encoder = load_encoder("all-MiniLM-L6-v2", backend=args.backend, calibration=texts)
    vectors, stats = encode_items(encoder, texts, cache=VectorCache())
    print(f"{len(texts)} texts encoded in {time.perf_counter() - start:.0f} s ({stats.from_cache} from cache)", flush=True)
    out = {"n": len(texts), "options": options, "fits": {}}
    position = {t: i for i, t in enumerate(texts)}
    tests = {name: ([position[t] for t in rows], labels) for name, (rows, labels) in labelled_tests().items()
             if all(t in position for t in rows)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes = [int(s) for s in args.sizes.split(",")]
        for size in sizes:
            print(f"fit at {size} vectors", flush=True)
            result, eigenvectors = timed_fit(vectors[:size], tmp, options, tests=tests)
            if args.legacy:
                print(f"previous fit at {size}", flush=True)
                previous, old_vectors = timed_fit(vectors[:size], tmp, options, legacy=True, tests=tests)
                result["previous"] = previous
                result["vs_previous"] = subspace_comparison(eigenvectors, old_vectors)
            out["fits"][str(size)] = result
            print(f"  {result}", flush=True)
    out["banking77"] = banking77_v(options)
    print("BANKING77", out["banking77"], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "spectral_fit.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
