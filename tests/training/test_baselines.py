"""Item-kNN on a hand-made history: similarities and scores worked out by hand."""

import numpy as np
import pytest

from training.baselines import ItemKNN


def test_cosine_co_occurrence_and_scores():
    # items 1..3; users: {1,2}, {1,2}, {1,3}
    knn = ItemKNN(vocab_size=4, shrink=0.0).fit([[1, 2], [2, 1, 1], [1, 3]])
    sim = knn.sim.toarray()
    assert sim[1, 2] == pytest.approx(2 / np.sqrt(3 * 2))
    assert sim[1, 3] == pytest.approx(1 / np.sqrt(3 * 1))
    assert sim[2, 3] == 0 and sim[1, 1] == 0
    scores = knn.score([[2], [2, 3]])
    assert np.argmax(scores[0]) == 1
    assert scores[1, 1] == pytest.approx(sim[2, 1] + sim[3, 1])


def test_neighbours_are_cut_to_the_most_similar():
    knn = ItemKNN(vocab_size=4, shrink=0.0, neighbours=1).fit([[1, 2], [1, 2], [1, 3]])
    assert knn.sim[1].nnz == 1 and knn.sim[1, 2] > 0
