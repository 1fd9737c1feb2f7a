"""The one batching helper: order kept, sizes bounded, lazy on its input."""

from __future__ import annotations

import itertools

import pytest

from event_clip_ros.batching import batched


def test_batches_keep_order_and_hold_at_most_batch_size():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched(range(6), 3)) == [[0, 1, 2], [3, 4, 5]]
    assert list(batched([], 3)) == []
    assert list(batched("ab", 5)) == [["a", "b"]]


def test_batches_are_cut_lazily_from_an_endless_iterator():
    first, second = itertools.islice(batched(itertools.count(), 4), 2)
    assert (first, second) == ([0, 1, 2, 3], [4, 5, 6, 7])


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_a_batch_size_below_one_or_not_an_integer_is_refused(bad):
    with pytest.raises(ValueError, match="batch_size"):
        next(batched(range(3), bad))
