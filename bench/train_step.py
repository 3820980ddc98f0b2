"""Training throughput: embtune's trainer vs sentence-transformers' own SentenceTransformerTrainer, one process.

Same model (all-MiniLM-L6-v2), objective (multiple-negatives ranking on (text, text) pairs, i.e. unsupervised SimCSE,
scale 20 = temperature 0.05), batch size, learning rate and BANKING77 train texts. Neither saves or evaluates inside
the timed window. steps/s is measured from the end of step 3 to the last step (warm-up excluded); the two trainers
alternate for --rounds rounds and the medians are compared.

Both trainers see the same batches in the same order: sentence-transformers gets the texts in the order embtune's
trainer draws them (its epoch-0 permutation for seed 0) and a sequential batch sampler, so every step of both does the
same work even though texts differ in length. Padded tokens per second (every token the transformer ran) are printed
too. ``--equal-length`` keeps only the texts of the most common token length (the previous protocol).

Setup: `.venv/bin/pip install -c constraints.txt -r bench/requirements.txt` (datasets, accelerate: bench only).
Usage: .venv/bin/python bench/train_step.py [--steps 20] [--batch-size 32] [--rounds 2] [--equal-length]
Target (issue 5): embtune steps/s / sentence-transformers steps/s >= 1.0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "banking77" / "train.jsonl"
SKIP = 3
SEED = 0  # both trainers' seed; embtune's batch order follows from it


def rate(stamps: list[float], tokens: list[tuple[float, int]]) -> tuple[float, float, int]:
    """Steps/s and padded tokens/s (every token the transformer ran, padding included) in the timed window, and the
    padded tokens of the whole run (equal for both trainers when they saw the same batches)."""
    start, end = stamps[SKIP - 1], stamps[-1]
    done = sum(n for t, n in tokens if start < t <= end)
    return (len(stamps) - SKIP) / (end - start), done / (end - start), sum(n for _, n in tokens)


def count_tokens(model) -> list[tuple[float, int]]:
    """(time, padded tokens) of every forward pass through the model's transformer."""
    tokens: list[tuple[float, int]] = []
    model[0].register_forward_pre_hook(
        lambda module, args: tokens.append((time.perf_counter(), int(args[0]["input_ids"].numel()))))
    return tokens


def sentence_transformers_run(path: str, texts: list[str], steps: int, batch_size: int,
                              lr: float) -> tuple[float, float, int]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from torch.utils.data import BatchSampler, SequentialSampler
    from transformers import TrainerCallback

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    class InOrder(SentenceTransformerTrainer):
        """Batches in dataset order: the caller has put the texts in the order embtune's trainer draws them."""

        def get_batch_sampler(self, dataset, batch_size, drop_last, *args, **kwargs):
            return BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last)

    model = SentenceTransformer(path, device="cpu")
    tokens = count_tokens(model)
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=lr,
            warmup_ratio=0.0, save_strategy="no", logging_strategy="no", report_to=[], seed=SEED, use_cpu=True,
            dataloader_drop_last=True,
        )
        trainer = InOrder(
            model=model, args=args, train_dataset=Dataset.from_dict({"anchor": texts, "positive": texts}),
            loss=MultipleNegativesRankingLoss(model, scale=20.0), callbacks=[Clock()],
        )
        trainer.train()
    return rate(stamps, tokens)


def embtune_run(path: str, texts: list[str], steps: int, batch_size: int, lr: float) -> tuple[float, float, int]:
    from embtune.encoders.sentence_transformer import load_sentence_transformer
    from embtune.training.objectives import make_objective
    from embtune.training.trainer import TrainConfig, train

    stamps: list[float] = []
    model = load_sentence_transformer(Path(path), "cpu")
    tokens = count_tokens(model)
    config = TrainConfig(max_steps=steps, batch_size=batch_size, learning_rate=lr, warmup_ratio=0.0,
                         checkpoint_every=steps, seed=SEED)
    with tempfile.TemporaryDirectory() as out:
        train(model, make_objective("mnrl", model), [(t, t) for t in texts], config, checkpoint_dir=Path(out),
              on_step=lambda step, total, loss: stamps.append(time.perf_counter()))
    return rate(stamps, tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--equal-length", action="store_true", help="only the texts of the most common token length")
    args = parser.parse_args()

    from embtune.encoders import resolve_model

    path = str(resolve_model("all-MiniLM-L6-v2").path)
    texts = [json.loads(line)["text"] for line in DATA.read_text().splitlines()]
    if args.equal_length:
        from collections import Counter

        from transformers import AutoTokenizer

        lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(path)(texts)["input_ids"]]
        common = Counter(lengths).most_common(1)[0][0]
        texts = [t for t, n in zip(texts, lengths) if n == common]
        print(f"{len(texts)} texts of {common} tokens (the most common length)", flush=True)
    import numpy as np

    # embtune's trainer draws epoch 0 in this order (training/trainer.py: default_rng([seed, epoch]).permutation(n))
    in_embtune_order = [texts[i] for i in np.random.default_rng([SEED, 0]).permutation(len(texts))]
    theirs, ours = [], []
    for _ in range(args.rounds):
        theirs.append(sentence_transformers_run(path, in_embtune_order, args.steps, args.batch_size, args.lr))
        ours.append(embtune_run(path, texts, args.steps, args.batch_size, args.lr))
        print(json.dumps({"sentence_transformers_steps_per_s": theirs[-1][0], "embtune_steps_per_s": ours[-1][0],
                          "sentence_transformers_tokens_per_s": theirs[-1][1], "embtune_tokens_per_s": ours[-1][1],
                          "same_padded_tokens": theirs[-1][2] == ours[-1][2]}),
              flush=True)
    st, et = statistics.median(r[0] for r in theirs), statistics.median(r[0] for r in ours)
    st_tok, et_tok = statistics.median(r[1] for r in theirs), statistics.median(r[1] for r in ours)
    print(json.dumps({"steps": args.steps, "batch_size": args.batch_size, "texts": len(texts),
                      "equal_length": args.equal_length,
                      "sentence_transformers_steps_per_s": round(st, 4), "embtune_steps_per_s": round(et, 4),
                      "ratio_embtune_over_st": round(et / st, 3),
                      "sentence_transformers_tokens_per_s": round(st_tok, 1), "embtune_tokens_per_s": round(et_tok, 1),
                      "token_ratio_embtune_over_st": round(et_tok / st_tok, 3)}, indent=2))


if __name__ == "__main__":
    main()
