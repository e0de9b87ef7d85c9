"""Lane keys: Flink's key-group hashing mirrored exactly, and lanes spread evenly."""

from __future__ import annotations

from collections import Counter

import pytest

from aimass.keys import java_string_hash, key_group, lane_key, lane_keys, row_key_hash, subtask_of

# Printed by a throwaway Java program against the PyFlink 2.2.1 wheel's jars: key,
# String.hashCode, Row.of(key).hashCode, and KeyGroupRangeAssignment.assignToKeyGroup of the
# Row (what PyFlink's key_by hashes) at max parallelism 128 and 32768.
FLINK_VECTORS = [
    ("digits#0", -64679981, -64679919, 2, 18434),
    ("digits#1", -64679980, -64679918, 54, 7350),
    ("heavy#7", 795860859, 795860921, 36, 22948),
    ("", 0, 62, 33, 19617),
    ("é✓ünï", 513425587, 513425649, 89, 6361),
    ("model-with-a-long-name#12345", -1359125347, -1359125285, 32, 14368),
]


@pytest.mark.parametrize(("key", "string_hash", "row_hash", "group_128", "group_32768"), FLINK_VECTORS)
def test_hashing_matches_flink(key: str, string_hash: int, row_hash: int, group_128: int, group_32768: int) -> None:
    assert java_string_hash(key) == string_hash
    assert row_key_hash(key) == row_hash
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
