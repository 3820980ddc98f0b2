"""embtune encode vs plain sentence-transformers encode: same model, same texts, same batch size, one process.

Measures (each the median of --repeats alternating runs, model already loaded for both):
- cold: embtune with an empty vector cache (hashing + cache writes included) vs SentenceTransformer.encode
- warm: embtune again over the same texts with a freshly constructed encoder (weights not loaded) vs cold

Usage: .venv/bin/python bench/encode.py [--n 3000] [--batch-size 64] [--repeats 3]
Targets (issue 3): cold ratio ST/embtune >= 1.0; warm >= 50x faster than cold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "banking77" / "train.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from embtune.encoders import VectorCache, load_encoder, resolve_model
    from embtune.encoders.encode import encode_items

    texts = [json.loads(line)["text"] for line in args.data.read_text().splitlines()][: args.n]
    path = resolve_model("all-MiniLM-L6-v2").path
    reference = SentenceTransformer(str(path), device="cpu")
    reference.encode(texts[:64])  # load weights and warm up before timing

    st_times, cold_times, warm_times = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        st_vectors = reference.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        st_times.append(time.perf_counter() - start)

        with tempfile.TemporaryDirectory() as cache_dir:
            cache = VectorCache(cache_dir)
            encoder = load_encoder("all-MiniLM-L6-v2", device="cpu", cache=cache)
            encoder.encode(texts[:64])  # load weights and warm up before timing
            cache.clear()
            start = time.perf_counter()
            ours, stats = encode_items(encoder, texts, cache=cache, batch_size=args.batch_size)
            cold_times.append(time.perf_counter() - start)
            assert stats.encoded == len(texts)

            warm_cache = VectorCache(cache_dir)  # a new run: new cache handle, new encoder, weights not loaded
            fresh = load_encoder("all-MiniLM-L6-v2", device="cpu", cache=warm_cache)
            start = time.perf_counter()
            warm, stats = encode_items(fresh, texts, cache=warm_cache, batch_size=args.batch_size)
            warm_times.append(time.perf_counter() - start)
            assert stats.from_cache == len(texts) and not fresh.loaded
            np.testing.assert_array_equal(warm, ours)
            cache.close()
            warm_cache.close()

    cosine = np.sum(ours * st_vectors, axis=1)
    st, cold, warm_t = (statistics.median(t) for t in (st_times, cold_times, warm_times))
    result = {
        "texts": len(texts),
        "batch_size": args.batch_size,
        "sentence_transformers_s": round(st, 3),
        "embtune_cold_s": round(cold, 3),
        "embtune_warm_s": round(warm_t, 4),
        "ratio_st_over_embtune_cold": round(st / cold, 3),
        "warm_speedup_over_cold": round(cold / warm_t, 1),
        "texts_per_s_cold": round(len(texts) / cold, 1),
        "min_cosine_vs_st": float(cosine.min()),
        "all_runs": {"st": st_times, "cold": cold_times, "warm": warm_times},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
