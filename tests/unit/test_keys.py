"""Lane keys: Flink's key-group hashing mirrored exactly, and lanes spread evenly."""

from __future__ import annotations

from collections import Counter

import pytest

from aimass.keys import java_string_hash, key_group, lane_key, lane_keys, subtask_of

# Printed by Flink 2.2.1's KeyGroupRangeAssignment.assignToKeyGroup (a throwaway Java program
# against the PyFlink wheel's jars): key, String.hashCode, key group at 128 and at 32768.
FLINK_VECTORS = [
    ("digits#0", -64679981, 2, 29698),
    ("digits#1", -64679980, 29, 25629),
    ("heavy#7", 795860859, 25, 7193),
    ("", 0, 94, 31198),
    ("é✓ünï", 513425587, 80, 14416),
    ("model-with-a-long-name#12345", -1359125347, 78, 30286),
]


@pytest.mark.parametrize(("key", "hash_code", "group_128", "group_32768"), FLINK_VECTORS)
def test_hashing_matches_flink(key: str, hash_code: int, group_128: int, group_32768: int) -> None:
    assert java_string_hash(key) == hash_code
    assert key_group(key, 128) == group_128
    assert key_group(key, 32768) == group_32768


@pytest.mark.parametrize("parallelism", [1, 2, 4, 8])
def test_lanes_are_even_over_subtasks_for_every_divisor(parallelism: int) -> None:
    for model in ("digits", "heavy", "a-model-with-a-long-name"):
        keys = lane_keys(model, 8, 128)
        assert len(set(keys)) == 8
        per_subtask = Counter(subtask_of(k, 128, parallelism) for k in keys)
        assert sorted(per_subtask) == list(range(parallelism))
        assert set(per_subtask.values()) == {8 // parallelism}


def test_other_parallelisms_are_within_one_lane_of_even() -> None:
    for parallelism in (3, 5, 6, 7):
        counts = Counter(subtask_of(k, 128, parallelism) for k in lane_keys("digits", 8, 128))
        assert max(counts.values()) - min(counts.get(s, 0) for s in range(parallelism)) <= 1


def test_a_request_id_keeps_its_lane() -> None:
    keys = lane_keys("digits", 8, 128)
    first = lane_key("digits", "req-42", 8, 128)
    assert first in keys and lane_key("digits", "req-42", 8, 128) == first
    spread = Counter(lane_key("digits", f"req-{i}", 8, 128) for i in range(8000))
    assert len(spread) == 8 and min(spread.values()) > 800


def test_lanes_outside_the_key_group_range_are_refused() -> None:
    with pytest.raises(ValueError, match="max_parallelism"):
        lane_keys("digits", 0, 128)
    with pytest.raises(ValueError, match="max_parallelism"):
        lane_keys("digits", 256, 128)
