"""The trainer's item order: the seeded permutation, and length-grouped batches that waste less on padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embtune.training.batches import GROUP_BATCHES, epoch_order, item_lengths, label_order
from embtune.training.objectives import make_objective
from embtune.training.trainer import TrainConfig, train


def padding_share(lengths: np.ndarray, order: np.ndarray, batch_size: int) -> float:
    """The share of the tokens a transformer computes that are padding, for batches taken in ``order``."""
    lengths = np.asarray(lengths)
    padded = real = 0
    for start in range(0, len(order), batch_size):
        batch = lengths[order[start : start + batch_size]]
        padded += int(batch.max()) * len(batch)
        real += int(batch.sum())
    return 1 - real / max(padded, 1)


def test_without_lengths_the_order_is_the_seeded_permutation_runs_always_had():
    for epoch in (0, 3):
        np.testing.assert_array_equal(epoch_order(1000, 32, 7, epoch), np.random.default_rng([7, epoch]).permutation(1000))


@pytest.mark.parametrize("n", [1000, 3 * 32 * GROUP_BATCHES + 17, 31])
def test_grouped_order_covers_every_item_once_in_full_batches_and_cuts_padding(n):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=n)
    order = epoch_order(n, 32, 0, 0, lengths)
    assert sorted(order.tolist()) == list(range(n))
    np.testing.assert_array_equal(order, epoch_order(n, 32, 0, 0, lengths))  # a resume finds the same order
    assert not np.array_equal(order, epoch_order(n, 32, 0, 1, lengths))  # each epoch its own
    if n > 32:
        plain = epoch_order(n, 32, 0, 0)
        assert padding_share(lengths, order, 32) < 0.5 * padding_share(lengths, plain, 32)
        # only the last batch may be short, so every batch_size slice the trainer takes is one whole batch: a cut
        # of a length-sorted group, longest first (a short batch shuffled into the middle would break this)
        for start in range(0, n - n % 32, 32):
            batch = lengths[order[start : start + 32]]
            assert np.all(np.diff(batch) <= 0), start
        # batches stay shuffled: the first batches are not simply the longest texts
        first = lengths[order[:32]].mean()
        assert first < np.sort(lengths)[-32:].mean()


def test_item_lengths_count_tokens_of_the_longest_text_of_an_item(tiny_model):
    from embtune.encoders.sentence_transformer import load_sentence_transformer

    model = load_sentence_transformer(Path(tiny_model), "cpu")
    lengths = item_lengths(model, ["one", ("one", "one two three four five six"), ("one", 3)])
    assert lengths[0] < lengths[1] and lengths[2] == lengths[0]
    assert item_lengths(object(), ["abc", ("abcdef", "a")]).tolist() == [3, 6]  # no tokenizer: characters


def test_trainer_batches_by_length_where_the_objective_allows_it(tiny_model, demo_rows, tmp_path):
    """Every forward pass of the transformer is counted: grouped batches pad less than the plain order; supcon (whose
    loss reads who shares a batch) keeps the plain order unless asked."""
    from embtune.encoders.sentence_transformer import load_sentence_transformer

    texts = [r["text"] for r in demo_rows[:640]]

    def padding(objective_name, items, per_label=None, **config):
        model = load_sentence_transformer(Path(tiny_model), "cpu")
        seen = []
        model[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]["attention_mask"].clone()))
        objective = make_objective(objective_name, model, **({} if per_label is None else {"per_label": per_label}))
        train(model, objective, items, TrainConfig(max_steps=10, batch_size=32, **config),
              checkpoint_dir=tmp_path / f"{objective_name}-{config}-{per_label}")
        return 1 - sum(int(m.sum()) for m in seen) / sum(m.numel() for m in seen)

    grouped, plain = padding("mnrl", [(t, t) for t in texts]), padding("mnrl", [(t, t) for t in texts], length_grouped=False)
    assert grouped < 0.5 * plain, (grouped, plain)
    labelled = [(t, r["label"]) for t, r in zip(texts, demo_rows)]
    from embtune.training.objectives.supcon import SupervisedContrastiveObjective

    assert SupervisedContrastiveObjective.length_grouping is False
    default = padding("supcon", labelled, per_label=0)
    assert default == padding("supcon", labelled, per_label=0, length_grouped=False)  # the plain order, step for step
    assert default > padding("supcon", labelled, per_label=0, length_grouped=True)


def test_label_order_lays_batches_out_as_runs_of_one_label():
    labels = np.repeat([f"l{i}" for i in range(40)], 8)[np.random.default_rng(1).permutation(320)]
    order = label_order(labels, 0, 0, 4)
    assert sorted(order.tolist()) == list(range(320))
    np.testing.assert_array_equal(order, label_order(labels, 0, 0, 4))  # a resume finds the same order
    assert not np.array_equal(order, label_order(labels, 0, 1, 4))
    runs = labels[order].reshape(-1, 4)  # 8 per label: two runs of 4 each, laid end to end
    assert (runs == runs[:, :1]).all()
    batches = labels[order].reshape(-1, 32)
    assert all(len(set(b)) <= 8 for b in batches)  # 8 labels a batch at most, so every text meets 3 of its own
    assert len({tuple(b) for b in batches}) == len(batches)
    # uneven labels (1, 2, 5 items) still come once each
    ragged = np.array(["a"] + ["b"] * 2 + ["c"] * 5)
    assert sorted(label_order(ragged, 0, 0, 4).tolist()) == list(range(8))


def test_supcon_in_label_runs_sees_several_positives_per_text_in_one_forward_pass(tiny_model, demo_rows, tmp_path):
    """per_label=4: each step embeds the batch once, and every batch holds runs of one label."""
    from embtune.encoders.sentence_transformer import load_sentence_transformer

    rows = demo_rows[:320]
    items = [(r["text"], r["label"]) for r in rows]
    label_of = {r["text"]: r["label"] for r in rows}

    def forwards(per_label):
        model = load_sentence_transformer(Path(tiny_model), "cpu")
        seen = []
        model[0].register_forward_pre_hook(lambda module, args: seen.append(len(args[0]["input_ids"])))
        batches = []
        objective = make_objective("supcon", model, per_label=per_label)
        original = objective.batch
        objective.batch = lambda chunk, rng: (batches.append([label_of[t] for t, _ in chunk]), original(chunk, rng))[1]
        result = train(model, objective, items, TrainConfig(max_steps=6, batch_size=32),
                       checkpoint_dir=tmp_path / f"pl{per_label}")
        assert result.steps == 6
        return seen, batches

    seen, batches = forwards(4)
    assert seen == [32] * 6  # one forward pass of the batch a step (the plain form runs two)
    for labels in batches:  # several texts of each label in the batch: positives without a second pass
        counts = [labels.count(x) for x in set(labels)]
        assert np.mean(counts) >= 2.5, counts
    seen, _ = forwards(0)
    assert seen == [32] * 12
