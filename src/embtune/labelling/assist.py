"""What helps a person label less, computed in the high-dimensional (tuned) space, never on a 2-D map:

- :func:`suggest_clusters`: KMeans groups, each with its size, its cohesion (how many of its members' nearest
  neighbours are members too), the texts nearest its centre and its keywords (class-based TF-IDF: a word scores high
  in a group when it is frequent there and rare across groups), the groups with the most close-knit members first;
- :func:`propagate`: a label and a confidence for every unlabelled item from its nearest labelled ones (a
  similarity-weighted vote; the confidence is the winning label's share of the vote);
- :func:`next_to_label`: a queue of items worth a person's look: the least confident, spread out (farthest-first) so
  the queue does not show ten copies of the same doubt;
- :func:`suspects`: labelled items whose labelled neighbours mostly carry another label.

All take unit-normalisable vectors (rows = the corpus's items) and item indices; nothing here reads files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embtune.data.vectors import l2_normalize, nearest_neighbors


# Above this many unlabelled items the groups' centres are fitted on a random sample of this size, and every item then
# joins its nearest centre: at 100,000 items (k = 200, bench/explore_load.py's points) fitting on all of them took
# 3.6-4.5 s, this way 0.5 s.
KMEANS_SAMPLE = 20_000


@dataclass
class Suggestion:
    cluster: int
    members: np.ndarray  # item indices, nearest to the centre first
    keywords: list[str]
    cohesion: float = 1.0  # the share of the members' nearest neighbours (in the whole corpus) that are members too

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def close_knit(self) -> float:
        """Members expected to share one label: size x cohesion. The page offers groups in this order."""
        return self.size * self.cohesion


def class_tfidf_keywords(texts: list[str], groups: np.ndarray, *, top: int = 5) -> dict[int, list[str]]:
    """Keywords per group by class-based TF-IDF (BERTopic's c-TF-IDF): the texts of a group are one document; a
    word's weight is its frequency in the group (normalised by the group's words) x log(1 + average words per group /
    the word's frequency over all groups). English stop words are left out."""
    from sklearn.feature_extraction.text import CountVectorizer

    labels = sorted(set(np.asarray(groups).tolist()))
    documents = [" ".join(t for t, g in zip(texts, groups) if g == label) for label in labels]
    try:
        vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_][\w'-]+\b")
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # nothing but stop words / numbers
        return {label: [] for label in labels}
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + counts.sum(axis=1).mean() / np.maximum(counts.sum(axis=0), 1))
    weights = tf * idf
    return {label: [str(words[j]) for j in np.argsort(-weights[i])[:top] if weights[i, j] > 0]
            for i, label in enumerate(labels)}


def suggest_clusters(vectors: np.ndarray, texts: list[str] | None, *, k: int | None = None, seed: int = 0,
                     exclude: np.ndarray | None = None, keywords: int = 5,
                     neighbours: np.ndarray | None = None) -> list[Suggestion]:
    """KMeans groups of the items not in ``exclude`` (e.g. those already labelled). ``k``: default one group per ~50
    items, between 2 and 200 (centres fitted on a sample of KMEANS_SAMPLE items when there are more). ``texts`` None
    (an image corpus): groups without keywords.

    Each group's cohesion is the share of its members' nearest neighbours (``neighbours``: the corpus's neighbour
    table, :func:`~embtune.data.vectors.nearest_neighbors` of ``vectors``; computed here with 10 when not given) that
    are in the group too; excluded items count as outside. Groups come in the order of size x cohesion, the members
    expected to share one label, so a person first meets the groups they can label with the fewest texts taken out.
    Measured with bench/labelling_effort.py's simulated reader (100 actions) on six sets (five text sets and
    cifar10-mini), in the base, the spectral-tuned and the re-tuned spaces: taking the groups largest first needed
    6-169 % more actions to reach 50 % labelled (25 % on the biomedical titles) when each text taken out counts as a
    click; the groups taken alone changed by -26 % to +14 %."""
    from sklearn.cluster import KMeans

    x = l2_normalize(np.asarray(vectors, dtype=np.float32))
    items = np.setdiff1d(np.arange(len(x)), exclude if exclude is not None else [])
    if len(items) < 2:
        return []
    k = int(min(len(items), k or min(200, max(2, len(items) // 50))))
    fit_on = items if len(items) <= KMEANS_SAMPLE else np.random.default_rng(seed).choice(items, KMEANS_SAMPLE, replace=False)
    model = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(x[fit_on])
    assignment = model.predict(x[items]) if len(fit_on) < len(items) else model.labels_
    words = class_tfidf_keywords([texts[i] for i in items], assignment, top=keywords) if texts is not None and keywords else {}
    table = nearest_neighbors(x, 10) if neighbours is None else neighbours
    group_of = np.full(len(x), -1)
    group_of[items] = assignment
    out = []
    for cluster in range(k):
        members = items[assignment == cluster]
        if len(members) == 0:
            continue
        centre = model.cluster_centers_[cluster]
        order = np.argsort(-(x[members] @ centre))
        cohesion = float(np.mean(group_of[table[members]] == cluster))
        out.append(Suggestion(cluster, members[order], words.get(cluster, []), cohesion))
    return sorted(out, key=lambda s: (-s.close_knit, s.cluster))


def propagate(vectors: np.ndarray, labelled: dict[int, str], *, k: int = 10, neighbours: np.ndarray | None = None,
              ruled_out: dict[int, set[str]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, labels, confidences) for every item without a label in ``labelled`` (item -> label), from its ``k``
    most similar items in the whole corpus (labelled or not): the label with the largest similarity-weighted vote
    among them, and that vote's share of *all* k neighbours' weight. So an item is sure only when most of its
    neighbourhood carries that label; one far from every labelled item gets label "" and confidence 0.

    ``neighbours``: the corpus's nearest-neighbour table (:func:`~embtune.data.vectors.nearest_neighbors` of
    ``vectors``, k columns); it depends on the vectors only, so a caller labelling step by step can compute it once.

    ``ruled_out``: item -> labels a person said it is not (it was taken out of a selection before that selection got
    the label). Those labels get no vote for that item. Without this, the items a reader leaves out of a cluster are
    exactly the ones whose neighbourhood carries the cluster's label: on BANKING77, over 100 actions of
    bench/labelling_effort.py's simulated reader, 61 of the 83 labels accepted at confidence >= 0.9 were wrong; with
    this, 3 of 33."""
    x = l2_normalize(np.asarray(vectors, dtype=np.float32))
    known = np.array(sorted(labelled), dtype=np.int64)
    unknown = np.setdiff1d(np.arange(len(x)), known)
    if len(known) == 0 or len(unknown) == 0:  # nothing to vote with (or nothing left): no label, no confidence
        return unknown, np.full(len(unknown), "", dtype=object), np.zeros(len(unknown))
    names = sorted(set(labelled.values()))
    lookup = {name: i for i, name in enumerate(names)}
    code = np.full(len(x), -1)  # each item's label as a number, -1 when unlabelled
    code[known] = [lookup[labelled[i]] for i in known]
    found = (nearest_neighbors(x, k) if neighbours is None else neighbours)[unknown]
    weights = np.maximum(np.einsum("nd,nkd->nk", x[unknown], x[found]), 0)
    codes = code[found]
    votes = np.zeros((len(unknown), len(names)))
    voting = codes >= 0
    rows = np.repeat(np.arange(len(unknown))[:, None], found.shape[1], axis=1)
    np.add.at(votes, (rows[voting], codes[voting]), weights[voting])
    row_of = np.full(len(x), -1)
    row_of[unknown] = np.arange(len(unknown))
    for item, names_out in (ruled_out or {}).items():
        if 0 <= item < len(x) and row_of[item] >= 0:
            votes[row_of[item], [lookup[n] for n in names_out if n in lookup]] = 0.0
    best = votes.argmax(axis=1)
    # a part of the same weights over their sum: at most 1 (clipped where the two sums round differently)
    share = np.minimum(votes[np.arange(len(unknown)), best] / np.maximum(weights.sum(axis=1), 1e-12), 1.0)
    guessed = np.where(votes.max(axis=1) > 0, np.array(names, dtype=object)[best], "")
    return unknown, guessed.astype(object), np.where(votes.max(axis=1) > 0, share, 0.0)


def next_to_label(vectors: np.ndarray, labelled: dict[int, str], *, size: int = 20, k: int = 10,
                  pool: int = 500, neighbours: np.ndarray | None = None,
                  ruled_out: dict[int, set[str]] | None = None) -> np.ndarray:
    """Up to ``size`` unlabelled items to look at next: from the ``pool`` least confident under :func:`propagate`
    (all unlabelled items when nothing is labelled yet), chosen farthest-first so they are spread out."""
    x = l2_normalize(np.asarray(vectors, dtype=np.float32))
    if labelled:
        items, _, confidence = propagate(x, labelled, k=k, neighbours=neighbours, ruled_out=ruled_out)
        candidates = items[np.argsort(confidence, kind="stable")[:pool]]
    else:
        candidates = np.arange(len(x))[:: max(1, len(x) // pool)][:pool]
    if len(candidates) == 0:
        return candidates
    chosen = [int(candidates[0])]
    distance = 1 - x[candidates] @ x[chosen[0]]
    while len(chosen) < min(size, len(candidates)):
        pick = int(np.argmax(distance))
        chosen.append(int(candidates[pick]))
        distance = np.minimum(distance, 1 - x[candidates] @ x[candidates[pick]])
    return np.array(chosen, dtype=np.int64)


def suspects(vectors: np.ndarray, labelled: dict[int, str], *, k: int = 10, agreement: float = 0.5) -> list[tuple[int, str, float]]:
    """Labelled items whose ``k`` most similar *labelled* neighbours mostly disagree: (item, the neighbours' majority
    label, the share of neighbours that agree with the item's own label), least agreeing first."""
    x = l2_normalize(np.asarray(vectors, dtype=np.float32))
    known = np.array(sorted(labelled), dtype=np.int64)
    if len(known) < 3:
        return []
    found = nearest_neighbors(x[known], k)  # among the labelled items, not itself
    names = np.array([labelled[i] for i in known], dtype=object)
    out = []
    for row, neighbours in enumerate(found):
        theirs = names[neighbours]
        share = float(np.mean(theirs == names[row]))
        if share < agreement:
            values, counts = np.unique(theirs.astype(str), return_counts=True)
            out.append((int(known[row]), str(values[np.argmax(counts)]), share))
    return sorted(out, key=lambda t: t[2])
