"""Peak memory of a streamed encode does not grow with the corpus, and a killed encode resumes to the same vectors.

1. Generates 1,000,000 short texts by recombining BANKING77 words (5-16 words each, fixed seed) into
   bench/results/data/synthetic_1m.jsonl, and its first 100,000 rows into synthetic_100k.jsonl.
2. Builds a tiny model for the bench (random 2-layer BERT, hidden 64, all-MiniLM-L6-v2's tokenizer) as a
   sentence-transformers folder.
3. Runs ``embtune encode`` (no vector cache) as a child process and reads its peak RSS (ru_maxrss): tiny model on 100k
   and on 1M, all-MiniLM-L6-v2 on the 100k slice.
4. Starts the 1M encode again, SIGKILLs it once ~40 % of the rows are committed, runs the same command again and checks
   that it resumed (``resumed_rows``) and that the vectors and ids equal the uninterrupted run's, byte for byte.

Usage: .venv/bin/python bench/encode_memory.py [--skip-minilm]
       results: bench/results/encode_memory.json
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
WORK = RESULTS / "data"

# Run a command as a child and print its peak resident memory: ru_maxrss of the children, in KiB on Linux.
_MEASURE = ("import json, resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps({'rc': done.returncode, 'stdout': done.stdout, 'stderr': done.stderr[-2000:], "
            "'peak_rss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def synthetic_corpus() -> tuple[Path, Path]:
    big, small = WORK / "synthetic_1m.jsonl", WORK / "synthetic_100k.jsonl"
    if big.exists() and small.exists():
        return big, small
    WORK.mkdir(parents=True, exist_ok=True)
    words = sorted({w for line in (DATA / "banking77" / "train.jsonl").read_text().splitlines()
                    for w in json.loads(line)["text"].split()})
    rng = np.random.default_rng(0)
    with open(big, "w") as f_big, open(small, "w") as f_small:
        for i in range(1_000_000):
            text = " ".join(words[j] for j in rng.integers(len(words), size=rng.integers(5, 17)))
            line = json.dumps({"id": f"s{i}", "text": text}) + "\n"
            f_big.write(line)
            if i < 100_000:
                f_small.write(line)
    return big, small


def tiny_model() -> Path:
    folder = WORK / "tiny-bert-64"
    if (folder / "modules.json").exists():
        return folder
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embtune.encoders import resolve_model

    minilm = resolve_model("all-MiniLM-L6-v2").path
    tokenizer = AutoTokenizer.from_pretrained(str(minilm))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128)
    hf = WORK / "tiny-bert-64-hf"
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    transformer = Transformer(str(hf), max_seq_length=64)
    SentenceTransformer(modules=[transformer, Pooling(64, "mean"), Normalize()], device="cpu").save(str(folder))
    return folder


def encode_command(corpus: Path, model: Path | str, output: Path) -> list[str]:
    return [sys.executable, "-m", "embtune", "encode", str(corpus), "--model", str(model), "-o", str(output),
            "--id-field", "id", "--no-cache", "--quiet", "--json"]


def measured(command: list[str]) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True)
    child = json.loads(done.stdout)
    if child["rc"]:
        raise SystemExit(f"failed: {' '.join(command)}\n{child['stderr']}")
    result = json.loads(child["stdout"])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["peak_rss_mib"] = round(child["peak_rss_mib"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-minilm", action="store_true")
    args = parser.parse_args()
    big, small = synthetic_corpus()
    model = tiny_model()
    out: dict = {}
    for name, corpus in (("tiny_100k", small), ("tiny_1m", big)):
        out[name] = measured(encode_command(corpus, model, WORK / f"{name}.npy"))
        print(name, out[name], flush=True)
    if not args.skip_minilm:
        out["minilm_100k"] = measured(encode_command(small, "all-MiniLM-L6-v2", WORK / "minilm_100k.npy"))
        print("minilm_100k", out["minilm_100k"], flush=True)

    # Kill the 1M encode midway, then run the same command again.
    target = WORK / "killed_1m.npy"
    progress = WORK / "killed_1m.npy.partial" / "progress.json"
    process = subprocess.Popen(encode_command(big, model, target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["rows"] >= 400_000:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = json.loads(progress.read_text())["rows"]
    resumed = measured(encode_command(big, model, target))
    same_vectors = filecmp.cmp(target, WORK / "tiny_1m.npy", shallow=False)
    same_ids = filecmp.cmp(WORK / "killed_1m.ids.jsonl", WORK / "tiny_1m.ids.jsonl", shallow=False)
    out["kill_resume"] = {"killed_after_rows": committed, "resumed_rows": resumed["resumed_rows"],
                          "encoded_after_restart": resumed["encoded"], "restart_wall_s": resumed["wall_s"],
                          "vectors_identical": same_vectors, "ids_identical": same_ids}
    print("kill_resume", out["kill_resume"], flush=True)
    out["rss_ratio_1m_vs_100k"] = round(out["tiny_1m"]["peak_rss_mib"] / out["tiny_100k"]["peak_rss_mib"], 3)
    for name in ("tiny_100k.npy", "tiny_1m.npy", "killed_1m.npy", "minilm_100k.npy"):
        for path in (WORK / name, WORK / name.replace(".npy", ".ids.jsonl")):
            path.unlink(missing_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encode_memory.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    os.sync()


if __name__ == "__main__":
    main()
