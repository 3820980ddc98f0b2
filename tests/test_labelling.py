"""Bulk-labelling logic without a browser: the event log replays to the same labels after a kill -9, undo/redo work
along a stack, propagation / keywords / queue / suspects do what a person relies on them for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from embtune.errors import EmbtuneError
from embtune.labelling import (
    Label,
    LabelLog,
    class_tfidf_keywords,
    next_to_label,
    propagate,
    suggest_clusters,
    suspects,
)


def test_labels_replay_with_exclusive_labels_unlabel_undo_and_redo(tmp_path):
    log = LabelLog.open(tmp_path / "out" / "labels.events.jsonl")
    log.apply("label", [1, 2, 3], label="card")
    log.apply("label", [3, 4], label=" refund ")  # exclusive: 3 moves to refund; spaces trimmed
    assert log.labels() == {1: Label("card", "manual", 1.0), 2: Label("card", "manual", 1.0),
                            3: Label("refund", "manual", 1.0), 4: Label("refund", "manual", 1.0)}
    log.apply("unlabel", [1])
    log.apply("label", [7], label="card", source="propagated", confidences=[0.8])
    assert set(log.labels()) == {2, 3, 4, 7} and log.labels()[7] == Label("card", "propagated", 0.8)
    log.undo()
    log.undo()  # back before the unlabel
    assert set(log.labels()) == {1, 2, 3, 4}
    log.redo()
    assert set(log.labels()) == {2, 3, 4}
    log.apply("label", [9], label="atm")  # a new action clears what could be redone
    assert log.redo() is None and not log.can_redo
    again = LabelLog.open(tmp_path / "out" / "labels.events.jsonl")
    assert again.labels() == log.labels() and again.actions() == log.actions() == 4
    lines = (tmp_path / "out" / "labels.events.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))


def test_items_left_out_of_a_labelled_selection_are_ruled_out_of_that_label_until_undone(tmp_path):
    path = tmp_path / "labels.events.jsonl"
    log = LabelLog.open(path)
    log.apply("label", [1, 2], label="card", left_out=[3, 4, 2])  # 2 was labelled, so it is not left out
    log.apply("label", [5], label="refund", left_out=[3])
    assert log.ruled_out() == {3: {"card", "refund"}, 4: {"card"}}
    assert json.loads(path.read_text().splitlines()[0])["left_out"] == [3, 4]
    assert LabelLog.open(path).ruled_out() == log.ruled_out()  # replayed from the file
    log.undo()
    assert log.ruled_out() == {3: {"card"}, 4: {"card"}}
    log.apply("label", [6], label="atm")  # nothing left out: no field written
    assert "left_out" not in json.loads(path.read_text().splitlines()[-1])
    with pytest.raises(ValueError, match="left_out goes with a label"):
        log.apply("unlabel", [1], left_out=[2])


def test_bad_actions_are_refused_before_anything_is_written(tmp_path):
    log = LabelLog.open(tmp_path / "e.jsonl")
    for call, message in ((lambda: log.apply("label", [1], label="  "), "non-empty label"),
                          (lambda: log.apply("label", [], label="x"), "at least one item"),
                          (lambda: log.apply("delete", [1]), "op must be"),
                          (lambda: log.apply("label", [1, 2], label="x", confidences=[1.0]), "2 items"),
                          (lambda: log.apply("label", [1], label="x", source="guess"), "source")):
        with pytest.raises(ValueError, match=message):
            call()
    assert log.undo() is None and (tmp_path / "e.jsonl").read_text() == ""


def test_a_torn_last_line_is_cut_and_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "e.jsonl"
    log = LabelLog.open(path)
    log.apply("label", [1, 2], label="a")
    with open(path, "a") as f:
        f.write('{"op": "label", "items": [5], "lab')  # a crash in the middle of a write
    again = LabelLog.open(path)
    assert set(again.labels()) == {1, 2} and path.read_text().endswith("\n")
    again.apply("label", [5], label="b")
    assert set(LabelLog.open(path).labels()) == {1, 2, 5}
    foreign = tmp_path / "f.jsonl"
    foreign.write_text('{"text": "hello"}\n')
    with pytest.raises(EmbtuneError, match="line 1 is not a label event"):
        LabelLog.open(foreign)


WRITER = """
import sys
from embtune.labelling import LabelLog
log = LabelLog.open(sys.argv[1])
for i in range(100000):
    log.apply("label", [i], label=f"l{i % 7}")
    print(i, flush=True)
"""


def test_kill_9_loses_no_acknowledged_label(tmp_path):
    path = tmp_path / "e.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    deadline = time.time() + 60
    while acknowledged < 200 and time.time() < deadline:
        acknowledged = int(writer.stdout.readline())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    labels = LabelLog.open(path).labels()
    assert acknowledged >= 200
    assert all(i in labels and labels[i].label == f"l{i % 7}" for i in range(acknowledged + 1))


def groups(n_groups=4, per=30, dim=16, spread=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dim))
    x = np.concatenate([c + spread * rng.normal(size=(per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(n_groups), per)


def test_propagation_follows_the_groups_and_is_sure_only_inside_labelled_neighbourhoods():
    x, y = groups()
    labelled = {int(i): f"g{y[i]}" for i in range(len(x)) if i % 30 < 20}  # two thirds of each group
    items, labels, confidence = propagate(x, labelled, k=6)
    assert len(items) == len(x) - len(labelled) and not set(items.tolist()) & set(labelled)
    assert np.mean(labels == np.array([f"g{y[i]}" for i in items])) == 1.0
    assert confidence.min() > 0.3 and confidence.max() <= 1.0
    # the confidence is the share of the whole neighbourhood: with one labelled item per group it is low
    sparse = {int(i): f"g{y[i]}" for i in (0, 30, 60, 90)}
    _, few_labels, few = propagate(x, sparse, k=6)
    assert few.max() < 0.5 and few.mean() < confidence.mean()
    assert set(few_labels) <= {"", "g0", "g1", "g2", "g3"} and "" in set(few_labels)  # most see no labelled item
    # with everything else labelled, an item inside a group is sure
    almost_all = {i: f"g{y[i]}" for i in range(len(x)) if i != 0}
    inside, guess, sure = propagate(x, almost_all, k=6)
    assert inside.tolist() == [0] and guess[0] == "g0" and sure[0] > 0.95
    none_items, none_labels, none_conf = propagate(x, {}, k=4)
    assert len(none_items) == len(x) and set(none_labels) == {""} and not none_conf.any()


def test_propagation_never_suggests_a_label_the_person_ruled_out_for_that_item():
    x, y = groups()
    labelled = {i: f"g{y[i]}" for i in range(len(x)) if i != 0}  # item 0 sits in g0, every neighbour says g0
    _, guess, sure = propagate(x, labelled, k=6)
    assert guess[0] == "g0" and sure[0] > 0.95
    # the person took item 0 out of a selection they labelled g0: g0 gets no vote, nothing else is near
    items, guess, sure = propagate(x, labelled, k=6, ruled_out={0: {"g0"}, 5: {"g1"}, 10_000: {"g0"}})
    assert items.tolist() == [0] and guess[0] == "" and sure[0] == 0.0
    # a ruled-out label that nobody carries (yet) and an item that is labelled already change nothing
    _, same, _ = propagate(x, labelled, k=6, ruled_out={0: {"other"}, 1: {"g0"}})
    assert same[0] == "g0"
    # the queue puts first the item whose only candidate label was ruled out
    two_open = {i: f"g{y[i]}" for i in range(len(x)) if i not in (0, 30)}
    first = int(next_to_label(x, two_open, size=1, k=6)[0])
    other = 30 if first == 0 else 0
    assert next_to_label(x, two_open, size=1, k=6, ruled_out={other: {f"g{y[other]}"}}).tolist() == [other]


def test_class_tfidf_keywords_name_each_group_by_its_own_words():
    texts = ["my card was stolen", "card blocked after theft", "stolen card again",
             "refund for the returned item", "where is my refund", "refund not arrived"]
    words = class_tfidf_keywords(texts, np.array([0, 0, 0, 1, 1, 1]), top=2)
    assert words[0][0] == "card" and "stolen" in words[0] and words[1][0] == "refund"
    assert class_tfidf_keywords(["the a", "of it"], np.array([0, 1])) == {0: [], 1: []}


def test_suggested_clusters_are_the_groups_with_keywords_and_skip_labelled_items():
    x, y = groups()
    words = ["card stolen", "refund late", "atm cash", "exchange rate"]
    texts = [f"{words[g]} number {i}" for i, g in enumerate(y)]
    found = suggest_clusters(x, texts, k=4)
    assert sorted(s.size for s in found) == [30] * 4
    for s in found:
        assert len(set(y[s.members].tolist())) == 1  # one planted group each
        assert s.keywords[0] in words[y[s.members[0]]].split()
    rest = suggest_clusters(x, texts, k=3, exclude=np.arange(30))
    assert sum(s.size for s in rest) == 90 and all(m >= 30 for s in rest for m in s.members)


def test_above_the_sample_size_group_centres_come_from_a_sample_and_every_item_still_joins_a_group(monkeypatch):
    import embtune.labelling.assist as assist

    x, y = groups()
    monkeypatch.setattr(assist, "KMEANS_SAMPLE", 40)  # 120 items: centres from 40 of them
    found = suggest_clusters(x, None, k=4)
    assert sorted(np.concatenate([s.members for s in found]).tolist()) == list(range(len(x)))
    assert sorted(s.size for s in found) == [30] * 4 and all(len(set(y[s.members].tolist())) == 1 for s in found)


def test_suggested_clusters_come_close_knit_first_by_the_share_of_neighbours_inside_them():
    x, y = groups()
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:20], np.flatnonzero(y == 2)[:10]])
    x, y = x[keep], y[keep]  # planted groups of 30, 20 and 10
    found = suggest_clusters(x, None, k=3)
    # each member's 10 nearest neighbours (itself left out) lie in its own group; the group of 10 has only 9 others
    assert [s.size for s in found] == [30, 20, 10] and [s.cohesion for s in found] == [1.0, 1.0, 0.9]
    # a neighbour table in which 8 of every 10 neighbours of the largest group's members lie in the next group: that
    # group is loose (cohesion 0.2, 6 close-knit members), so it comes last
    table = np.array([np.flatnonzero(y == g)[: 10] if g else np.r_[np.flatnonzero(y == 1)[:8], np.flatnonzero(y == 0)[:2]]
                      for g in y])
    found = suggest_clusters(x, None, k=3, neighbours=table)
    assert [(s.size, s.cohesion) for s in found] == [(20, 1.0), (10, 1.0), (30, 0.2)]
    assert [s.close_knit for s in found] == [20.0, 10.0, 6.0]
    # excluded (labelled) items count as outside the group they are neighbours of
    assert suggest_clusters(x, None, k=2, exclude=np.flatnonzero(y == 2)[:5], neighbours=table)[-1].cohesion < 1.0


def test_queue_is_uncertain_and_spread_out_and_suspects_are_labels_their_neighbours_dispute():
    x, y = groups()
    labelled = {int(i): f"g{y[i]}" for i in range(0, 120, 3)}
    queue = next_to_label(x, labelled, size=6, k=4)
    assert len(queue) == 6 and not set(queue.tolist()) & set(labelled)
    first = next_to_label(x, {}, size=4)
    assert len(set(y[first].tolist())) == 4  # nothing labelled yet: one from each group, not four of one
    wrong = dict(labelled)
    wrong[3] = "g2"  # item 3 sits in group 0
    found = suspects(x, wrong, k=5)
    assert [item for item, _, _ in found] == [3] and found[0][1] == "g0" and found[0][2] == 0.0
