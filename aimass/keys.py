"""Keys of the inference operator: which lane of which model a request joins.

Keying by model alone puts a hot model on one subtask; keying by request id never fills a
batch. So each model has ``lanes`` keys, and a request joins the lane chosen by a hash of its
id: a resubmitted id lands on the same key (and its de-duplication state) at any parallelism.

Flink sends a key to key group ``murmur(key.hashCode()) % max_parallelism`` and key group
``g`` to subtask ``g * parallelism // max_parallelism``. PyFlink's ``key_by`` keys the Java
stream by a one-field ``Row`` holding our string, whose ``hashCode`` is the string's plus 62
(``RowUtils.deepHashCodeRow`` of an INSERT row). Keys named naively (``digits#0``,
``digits#1``) land on arbitrary key groups, so two of them often share a subtask while another
subtask idles. :func:`lane_keys` instead picks, for lane ``k``, a key whose key group lies in
the ``k``-th of ``lanes`` equal slices of the key-group range (its first group). Every parallelism that divides
``lanes`` then gets exactly ``lanes / parallelism`` lanes per subtask, before and after a
rescale, with the lanes and their state unchanged (others get lanes within one of even).

The hash functions mirror ``String.hashCode``, ``Row.hashCode`` and Flink's
``MathUtils.murmurHash``; the unit tests hold vectors printed by Flink's own
``KeyGroupRangeAssignment``, and the integration tests read per-subtask record counts.
"""

from __future__ import annotations

import functools
import zlib

_MASK = 0xFFFFFFFF


def _int32(value: int) -> int:
    value &= _MASK
    return value - (1 << 32) if value >= 1 << 31 else value


def java_string_hash(text: str) -> int:
    """``java.lang.String.hashCode`` (over UTF-16 code units)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & _MASK
    return _int32(h)


def _rotl(value: int, shift: int) -> int:
    value &= _MASK
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def murmur_hash(code: int) -> int:
    """Flink's ``MathUtils.murmurHash(int)``: a non-negative int."""
    c = (code * 0xCC9E2D51) & _MASK
    c = _rotl(c, 15)
    c = (c * 0x1B873593) & _MASK
    c = _rotl(c, 13)
    c = (c * 5 + 0xE6546B64) & _MASK
    c ^= 4
    c ^= c >> 16
    c = (c * 0x85EBCA6B) & _MASK
    c ^= c >> 13
    c = (c * 0xC2B2AE35) & _MASK
    c ^= c >> 16
    signed = _int32(c)
    if signed >= 0:
        return signed
    return -signed if signed != -(1 << 31) else 0


def row_key_hash(key: str) -> int:
    """``Row.of(key).hashCode()``: how the Java side of PyFlink's ``key_by`` hashes our key."""
    return _int32(java_string_hash(key) + 62)


def key_group(key: str, max_parallelism: int) -> int:
    """Flink's key group of a key given to PyFlink's ``key_by`` as a string."""
    return murmur_hash(row_key_hash(key)) % max_parallelism


def subtask_of(key: str, max_parallelism: int, parallelism: int) -> int:
    """The subtask that owns ``key`` at ``parallelism``."""
    return key_group(key, max_parallelism) * parallelism // max_parallelism


@functools.lru_cache(maxsize=4096)
def lane_keys(model: str, lanes: int, max_parallelism: int) -> tuple[str, ...]:
    """One key per lane of ``model``; lane ``k``'s key is in the first key group of slice ``k``.

    (The first group of each slice, not any group in it, keeps parallelisms that do not divide
    ``lanes`` within one lane of even too.)
    """
    if not 1 <= lanes <= max_parallelism:
        raise ValueError(f"lanes={lanes} must be between 1 and max_parallelism={max_parallelism}")
    keys = []
    for lane in range(lanes):
        first = lane * max_parallelism // lanes
        suffix = 0
        while key_group(f"{model}#{lane}.{suffix}", max_parallelism) != first:
            suffix += 1
        keys.append(f"{model}#{lane}.{suffix}")
    return tuple(keys)


def lane_key(model: str, request_id: str, lanes: int, max_parallelism: int) -> str:
    """The key of a request: its model's lane chosen by a stable hash of its id."""
    return lane_keys(model, lanes, max_parallelism)[zlib.crc32(request_id.encode()) % lanes]
