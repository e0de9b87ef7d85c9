"""A model version's bytes where any TaskManager can read them: chunks on a Kafka topic.

:func:`upload` writes ``model.onnx`` to the blob topic (one partition, compacted: every key is
unique, so nothing is ever dropped) as :data:`CHUNK_BYTES` chunks keyed ``<sha256>/<index>``
and returns the ``kafka:<topic>/<partition>/<first>-<last>`` URI of the offsets they landed
at. :func:`fetch` reads exactly that range back, checks the SHA-256 and writes the file. No
shared file system, no other server: the broker the job already uses holds the bytes, and the
offsets make the fetch a sequential read.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bytes per chunk (well under the broker's default 1 MiB record limit).
CHUNK_BYTES = 512 * 1024
_KAFKA_URI = re.compile(r"^kafka:(?P<topic>[A-Za-z0-9._-]+)/(?P<partition>[0-9]+)/(?P<first>[0-9]+)-(?P<last>[0-9]+)$")


class BlobError(Exception):
    """A version's bytes cannot be had: the message says where and why."""


@dataclass(frozen=True, slots=True)
class Location:
    """Chunks at offsets ``first..last`` (inclusive) of one partition of the blob topic."""

    topic: str
    partition: int
    first: int
    last: int

    @property
    def uri(self) -> str:
        return f"kafka:{self.topic}/{self.partition}/{self.first}-{self.last}"

    @classmethod
    def parse(cls, uri: str) -> Location:
        match = _KAFKA_URI.match(uri)
        if match is None:
            raise BlobError(f"{uri!r} is not a kafka:<topic>/<partition>/<first>-<last> URI")
        first, last = int(match["first"]), int(match["last"])
        if last < first:
            raise BlobError(f"{uri!r}: last offset before the first")
        return cls(match["topic"], int(match["partition"]), first, last)


def sha256_of(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in 1 MiB pieces."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size


def upload(producer: Any, topic: str, path: Path, sha256: str, chunk_bytes: int = CHUNK_BYTES,
           progress: Callable[[int, int], None] | None = None) -> Location:
    """Write ``path`` to ``topic`` partition 0 in chunks; where they landed."""
    size = path.stat().st_size
    futures = []
    with open(path, "rb") as f:
        index = 0
        while True:
            piece = f.read(chunk_bytes)
            if not piece and index:
                break
            futures.append(producer.send(topic, key=f"{sha256}/{index}".encode(), value=piece, partition=0))
            index += 1
            if progress:
                progress(min(index * chunk_bytes, size), size)
            if not piece:
                break
    producer.flush()
    offsets = [future.get(timeout=60).offset for future in futures]
    if offsets != list(range(offsets[0], offsets[0] + len(offsets))):
        # Another writer interleaved (two deploys at once): the range holds foreign records.
        raise BlobError(f"chunks of {path} did not land at consecutive offsets of {topic}: deploy again")
    return Location(topic, 0, offsets[0], offsets[-1])


def fetch(consumer_factory: Callable[[], Any], uri: str, sha256: str, dest: Path, timeout_s: float = 300.0) -> Path:
    """Read the chunks at ``uri`` into ``dest`` (written whole or not at all); checks the SHA-256.

    Raises:
        BlobError: the range cannot be read in ``timeout_s``, holds other records, or the bytes
            do not have the digest the deploy names.
    """
    from kafka import TopicPartition

    where = Location.parse(uri)
    tp = TopicPartition(where.topic, where.partition)
    consumer = consumer_factory()
    digest = hashlib.sha256()
    # Unique per call: two subtasks of one TaskManager (one process) may fetch the same version.
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    expected = where.first
    try:
        consumer.assign([tp])
        consumer.seek(tp, where.first)
        with open(tmp, "wb") as out:
            while expected <= where.last:
                if time.monotonic() > deadline:
                    raise BlobError(f"{uri}: read {expected - where.first} of {where.last - where.first + 1} chunks "
                                    f"in {timeout_s:.0f} s; is the blob topic reachable?")
                for record in consumer.poll(timeout_ms=1000, max_records=64).get(tp, []):
                    if record.offset < expected:
                        continue
                    if record.offset != expected or not (record.key or b"").startswith(sha256.encode() + b"/"):
                        raise BlobError(f"{uri}: offset {record.offset} is not chunk {expected - where.first} of "
                                        f"{sha256[:12]}... (the topic was compacted or the URI is wrong)")
                    out.write(record.value or b"")
                    digest.update(record.value or b"")
                    expected += 1
                    if expected > where.last:
                        break
        if digest.hexdigest() != sha256:
            raise BlobError(f"{uri}: bytes have sha256 {digest.hexdigest()[:12]}..., the deploy says {sha256[:12]}...")
        os.replace(tmp, dest)
    finally:
        consumer.close()
        tmp.unlink(missing_ok=True)
    return dest
