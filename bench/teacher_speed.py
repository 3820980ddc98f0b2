"""What a distilled model saves at encode time: its teacher (the spectral tuner) needs the base model's vectors *and* a
search of the stored corpus for every new text; the distilled model (`finetune --objective distill`) has the base
model's architecture, so it encodes at the base model's speed and needs no stored corpus.

Times, in one process on the same texts: the base model encoding a set's test texts (no vector cache), and the
spectral tuner (fitted on the set's train vectors) transforming those vectors. Prints both, the teacher's total as a
ratio of the distilled model's, the tuner folder's size, and the CPU's vector extensions.

Usage: .venv/bin/python bench/teacher_speed.py [--set banking77] [--texts 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from suite import Space, cpu_flags  # bench/suite.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="banking77")
    parser.add_argument("--texts", type=int, default=2000)
    args = parser.parse_args()
    from embtune.data.pairs import read_pairs
    from embtune.tuners import SpectralTuner
    from suite import SHARED

    space = Space(args.set, read_pairs(SHARED / "stsb" / "test.jsonl"))
    texts = space.test.texts[: args.texts]
    tuner = SpectralTuner().fit(space.base[0])
    start = time.perf_counter()
    vectors = space.encoder.encode(texts, batch_size=64)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    tuner.transform(vectors)
    transform_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        tuner.save(Path(folder) / "t")
        size_mb = sum(f.stat().st_size for f in (Path(folder) / "t").iterdir()) / 2**20
    print(f"{args.set}: {len(texts)} texts; CPU: {cpu_flags()}")
    print(f"  distilled model (= base architecture): encode {encode_s:.1f} s ({len(texts) / encode_s:.0f} texts/s)")
    print(f"  teacher: encode {encode_s:.1f} s + spectral transform {transform_s:.2f} s over {len(space.base[0])} stored "
          f"vectors = {(encode_s + transform_s) / encode_s:.2f}x the distilled model's time; tuner folder {size_mb:.1f} MB")


if __name__ == "__main__":
    main()
