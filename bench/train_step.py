"""Training throughput: embtune's trainer vs sentence-transformers' own SentenceTransformerTrainer, one process.

Same model (all-MiniLM-L6-v2), objective (multiple-negatives ranking on (text, text) pairs, i.e. unsupervised SimCSE,
scale 20 = temperature 0.05), batch size, learning rate and BANKING77 train texts. Neither saves or evaluates inside
the timed window. steps/s is measured from the end of step 3 to the last step (warm-up excluded); the two trainers
alternate for --rounds rounds and the medians are compared.

Both trainers see the same batches in the same order: sentence-transformers gets the texts in the order embtune's
trainer draws them (its epoch-0 permutation for seed 0) and a sequential batch sampler, so every step of both does the
same work even though texts differ in length. Padded tokens per second (every token the transformer ran) are printed
too. ``--equal-length`` keeps only the texts of the most common token length (the previous protocol).

``--default-batches`` is the mixed-length comparison a user sees: each trainer batches the BANKING77 texts its own
default way (sentence-transformers: its default random batch sampler; embtune: length-grouped batches, on by default for
this objective) and the figure is **real tokens per second** (tokens of the texts, padding not counted: the work
either trainer had to do), plus the padding share of each. Quality for the same change is a bench/label_free.py row.

Setup: `.venv/bin/pip install -c constraints.txt -r bench/requirements.txt` (datasets, accelerate: bench only).
Usage: .venv/bin/python bench/train_step.py [--steps 20] [--batch-size 32] [--rounds 2] [--equal-length]
                                           [--default-batches]
Targets: same batches, embtune steps/s / sentence-transformers steps/s >= 1.0 (issue 5); --default-batches, real
tokens/s >= 1.2x (issue 25).
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


def rate(stamps: list[float], tokens: list[tuple[float, int, int]]) -> dict:
    """Steps/s, padded tokens/s (every token the transformer ran, padding included) and real tokens/s (padding not
    counted) in the timed window; the padded tokens of the whole run (equal for both trainers when they saw the same
    batches) and the padding share."""
    start, end = stamps[SKIP - 1], stamps[-1]
    window = [(p, r) for t, p, r in tokens if start < t <= end]
    return {"steps_per_s": (len(stamps) - SKIP) / (end - start),
            "padded_tokens_per_s": sum(p for p, _ in window) / (end - start),
            "real_tokens_per_s": sum(r for _, r in window) / (end - start),
            "padded_tokens": sum(p for _, p, _ in tokens),
            "padding_share": 1 - sum(r for _, _, r in tokens) / max(1, sum(p for _, p, _ in tokens))}


def count_tokens(model) -> list[tuple[float, int, int]]:
    """(time, padded tokens, real tokens) of every forward pass through the model's transformer."""
    tokens: list[tuple[float, int, int]] = []
    model[0].register_forward_pre_hook(
        lambda module, args: tokens.append((time.perf_counter(), int(args[0]["input_ids"].numel()),
                                            int(args[0]["attention_mask"].sum()))))
    return tokens


def sentence_transformers_run(path: str, texts: list[str], steps: int, batch_size: int,
                              lr: float, own_batches: bool = False) -> dict:
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
        trainer = (SentenceTransformerTrainer if own_batches else InOrder)(
            model=model, args=args, train_dataset=Dataset.from_dict({"anchor": texts, "positive": texts}),
            loss=MultipleNegativesRankingLoss(model, scale=20.0), callbacks=[Clock()],
        )
        trainer.train()
    return rate(stamps, tokens)


def embtune_run(path: str, texts: list[str], steps: int, batch_size: int, lr: float,
                own_batches: bool = False) -> dict:
    from embtune.encoders.sentence_transformer import load_sentence_transformer
    from embtune.training.objectives import make_objective
    from embtune.training.trainer import TrainConfig, train

    stamps: list[float] = []
    model = load_sentence_transformer(Path(path), "cpu")
    tokens = count_tokens(model)
    config = TrainConfig(max_steps=steps, batch_size=batch_size, learning_rate=lr, warmup_ratio=0.0,
                         checkpoint_every=steps, seed=SEED, length_grouped=None if own_batches else False)
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
    parser.add_argument("--default-batches", action="store_true",
                        help="each trainer batches its own default way (embtune: length-grouped); real tokens/s")
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
    from embtune.training.batches import epoch_order

    # embtune's trainer draws epoch 0 in this order when length grouping is off (the same-batches comparison)
    in_embtune_order = [texts[i] for i in epoch_order(len(texts), args.batch_size, SEED, 0)]
    theirs, ours = [], []
    st_texts = texts if args.default_batches else in_embtune_order
    for _ in range(args.rounds):
        theirs.append(sentence_transformers_run(path, st_texts, args.steps, args.batch_size, args.lr, args.default_batches))
        ours.append(embtune_run(path, texts, args.steps, args.batch_size, args.lr, args.default_batches))
        print(json.dumps({"sentence_transformers": theirs[-1], "embtune": ours[-1]}), flush=True)
    median = {key: {name: statistics.median(r[name] for r in runs) for name in runs[0]}
              for key, runs in (("sentence_transformers", theirs), ("embtune", ours))}
    summary = {"steps": args.steps, "batch_size": args.batch_size, "texts": len(texts), "equal_length": args.equal_length,
               "default_batches": args.default_batches, **median,
               "ratio_steps": round(median["embtune"]["steps_per_s"] / median["sentence_transformers"]["steps_per_s"], 3),
               "ratio_real_tokens": round(median["embtune"]["real_tokens_per_s"]
                                          / median["sentence_transformers"]["real_tokens_per_s"], 3),
               "ratio_padded_tokens": round(median["embtune"]["padded_tokens_per_s"]
                                            / median["sentence_transformers"]["padded_tokens_per_s"], 3)}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
