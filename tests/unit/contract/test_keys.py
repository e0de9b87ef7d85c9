"""Lane keys: Flink's key-group hashing mirrored exactly, and lanes spread evenly."""

from __future__ import annotations

from collections import Counter

import pytest

from aimass.contract.keys import key_group, lane_key, lane_keys, lane_of, subtask_of

# Printed by a throwaway Java program against the PyFlink 2.2.1 wheel's jars: an int key and
# KeyGroupRangeAssignment.assignToKeyGroup of it at max parallelism 128 and 32768 (an Integer's
# hashCode is its value). The lane table itself is checked against Java in tests/vectors/lanes.tsv.
FLINK_VECTORS = [
    (-64679919, 2, 18434),
    (-64679918, 54, 7350),
    (795860921, 36, 22948),
    (62, 33, 19617),
    (513425649, 89, 6361),
    (-1359125285, 32, 14368),
]


@pytest.mark.parametrize(("key", "group_128", "group_32768"), FLINK_VECTORS)
def test_hashing_matches_flink(key: int, group_128: int, group_32768: int) -> None:
    assert key_group(key, 128) == group_128
    assert key_group(key, 32768) == group_32768


@pytest.mark.parametrize("parallelism", [1, 2, 4, 8])
def test_lanes_are_even_over_subtasks_for_every_divisor(parallelism: int) -> None:
    keys = lane_keys(8, 128)
    assert len(set(keys)) == 8
    per_subtask = Counter(subtask_of(k, 128, parallelism) for k in keys)
    assert sorted(per_subtask) == list(range(parallelism))
    assert set(per_subtask.values()) == {8 // parallelism}


def test_other_parallelisms_are_within_one_lane_of_even() -> None:
    for parallelism in (3, 5, 6, 7):
        counts = Counter(subtask_of(k, 128, parallelism) for k in lane_keys(8, 128))
        assert max(counts.values()) - min(counts.get(s, 0) for s in range(parallelism)) <= 1


def test_a_request_id_keeps_its_lane_whatever_its_model() -> None:
    keys = lane_keys(8, 128)
    first = lane_key("req-42", 8, 128)
    assert first in keys and lane_key("req-42", 8, 128) == first
    spread = Counter(lane_of(f"req-{i}", 8) for i in range(8000))
    assert len(spread) == 8 and min(spread.values()) > 800


def test_lanes_outside_the_key_group_range_are_refused() -> None:
    with pytest.raises(ValueError, match="lanes"):
        lane_keys(0, 128)
    with pytest.raises(ValueError, match="lanes"):
        lane_keys(256, 128)
