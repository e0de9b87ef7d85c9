"""Lanes: the keys requests are micro-batched under, and where Flink puts them.

Keying by model alone puts a hot model on one subtask; keying by request id never fills a
batch. So requests are keyed by ``lanes`` lanes: a request joins lane ``crc32(id) % lanes``
(:func:`lane_of`), whatever its model, so every record of one id meets the same lane and is
served in arrival order (de-duplication itself is keyed by request id, downstream).

The job's Java router (``java/.../Lanes.java``) keys a lane by an ``Integer``. Flink sends a key
to key group ``murmur(key.hashCode()) % max_parallelism`` and key group ``g`` to subtask
``g * parallelism // max_parallelism``. Naive keys (0, 1, 2, ...) land on arbitrary key groups,
so two often share a subtask while another idles. :func:`lane_keys` instead picks, for lane
``k``, the smallest non-negative int whose key group is the first group of the ``k``-th of
``lanes`` equal slices of the key-group range. Every parallelism that divides ``lanes`` then
gets exactly ``lanes / parallelism`` lanes per subtask, before and after a rescale, with the
lanes and their state unchanged (others get lanes within one of even).

This module mirrors the Java side (``Integer.hashCode`` is the value; Flink's
``MathUtils.murmurHash``); both are checked against ``tests/vectors/lanes.json``.
"""

from __future__ import annotations

import functools
import zlib

_MASK = 0xFFFFFFFF


def _int32(value: int) -> int:
    value &= _MASK
    return value - (1 << 32) if value >= 1 << 31 else value


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


def key_group(key: int, max_parallelism: int) -> int:
    """Flink's key group of an ``Integer`` key."""
    return murmur_hash(_int32(key)) % max_parallelism


def subtask_of(key: int, max_parallelism: int, parallelism: int) -> int:
    """The subtask that owns ``key`` at ``parallelism``."""
    return key_group(key, max_parallelism) * parallelism // max_parallelism


@functools.lru_cache(maxsize=256)
def lane_keys(lanes: int, max_parallelism: int) -> tuple[int, ...]:
    """One key per lane; lane ``k``'s key is in the first key group of slice ``k``.

    (The first group of each slice, not any group in it, keeps parallelisms that do not divide
    ``lanes`` within one lane of even too.)
    """
    if not 1 <= lanes <= max_parallelism:
        raise ValueError(f"lanes={lanes} must be between 1 and max_parallelism={max_parallelism}")
    keys = []
    for lane in range(lanes):
        first = lane * max_parallelism // lanes
        key = 0
        while key_group(key, max_parallelism) != first:
            key += 1
        keys.append(key)
    return tuple(keys)


def lane_of(request_id: str, lanes: int) -> int:
    """The lane of a request id: ``crc32`` of its UTF-8 bytes, modulo ``lanes``."""
    return zlib.crc32(request_id.encode("utf-8")) % lanes


def lane_key(request_id: str, lanes: int, max_parallelism: int) -> int:
    """The key of a request: its lane's key."""
    return lane_keys(lanes, max_parallelism)[lane_of(request_id, lanes)]
