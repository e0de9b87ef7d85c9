"""Bad records nobody wrote down: seeded mutations of valid requests, and a corpus of files.

:mod:`aimass.faults.malformed` makes bad records whose answer is known in advance, one kind
at a time. These are the records a campaign cannot foresee, so their answer is not fixed
beforehand; what the job owes them is only that nothing is lost and nothing crashes:

* :class:`Mutator` damages the body of a valid ``digits`` request (bit flips, overwritten,
  inserted, deleted or repeated bytes, a varint made huge or negative) and keeps its framing
  and request id readable. Its record owes **one result for its id**, of any status (the damage
  may leave a valid request, or make any kind of bad one); a result that is not ``ok`` also owes
  **a dead letter** of the record's bytes whose reason matches the result's status, and an ``ok``
  result owes none. A new seed gives records no run has sent before.
* :func:`load_corpus` reads a folder of files, each the value of one record (``--bad-corpus`` of
  ``python -m aimass.faults``: malformed inputs from outside the repository). A file whose
  request id the job can read (the id :meth:`aimass.contract.codec.Codec.decode_request` returns or names
  in its error) owes what a fuzzed record owes: one result for that id, of any status, and a
  dead letter unless ``ok`` (so a file that is in fact a valid request is answered, not lost).
  A file with no readable id owes a dead letter of its bytes, with whatever reason.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from aimass.contract.codec import HEADER_SIZE, Codec, DecodeError
from aimass.faults.malformed import BadRecord, avro_long, avro_string, digits_request

#: The mutations a :class:`Mutator` picks from (one to three per record).
MUTATIONS = ("flip_bits", "overwrite", "insert", "delete", "repeat", "varint")

FUZZED = "fuzzed"
"""Kind of a :class:`Mutator`'s records (``BadRecord.kind``)."""
CORPUS = "corpus"
"""Kind of the records of :func:`load_corpus`."""

#: One line per kind of this module (for reports, beside :data:`aimass.faults.malformed.DESCRIPTIONS`).
DESCRIPTIONS = {
    FUZZED: "a valid request with its body damaged at random (bit flips, bytes overwritten, inserted, deleted "
    "or repeated, a varint made extreme): owes one result of any status, and a dead letter unless `ok`",
    CORPUS: "a file of `--bad-corpus`, sent as it is: owes a dead letter, or with a readable id what a fuzzed "
    "record owes",
}


class Mutator:
    """Seeded mutations of valid ``digits`` requests, past the framing and the request id.

    Args:
        codec: The codec of the data contract.
        rng: Seeded generator.
        id_prefix: Prefix of the request ids it invents.
    """

    def __init__(self, codec: Codec, rng: random.Random, id_prefix: str) -> None:
        self.codec = codec
        self.rng = rng
        self.id_prefix = id_prefix
        self._count = 0

    def make(self) -> BadRecord:
        """A damaged request: ``reason`` and ``status`` are None (any answer, see the module)."""
        self._count += 1
        rid = f"{self.id_prefix}fuzz-{self._count}"
        rows = self.rng.choice((1, 1, 1, 2, 3))
        pixels = np.asarray([self.rng.random() * 16 for _ in range(rows * 64)], dtype=np.float32).reshape(rows, 64)
        fields: dict[str, object] = {}
        if self.rng.random() < 0.3:
            fields["version"] = self.rng.choice(("1", "2"))
        if self.rng.random() < 0.3:
            fields["deadline_ms"] = int(time.time() * 1000) + 3_600_000  # an hour: far past any recovery
        if self.rng.random() < 0.3:
            fields["priority"] = self.rng.randint(-5, 5)
        valid = self.codec.encode_request(digits_request(rid, pixels, **fields))
        keep = HEADER_SIZE + len(avro_string(rid))  # framing and request id stay readable
        body = bytearray(valid[keep:])
        for _ in range(self.rng.randint(1, 3)):
            body = self._mutate(body)
        value = valid[:keep] + bytes(body)
        if value == valid:  # a mutation that changed nothing (a repeat of nothing, say): force one
            value = valid[:keep] + bytes(self._mutate(bytearray(b"\x00") + body))
        return BadRecord(FUZZED, value, None, rid, None)

    def _mutate(self, body: bytearray) -> bytearray:
        rng, n = self.rng, len(body)
        kind = rng.choice(MUTATIONS)
        at = rng.randrange(n) if n else 0
        if kind == "flip_bits" and n:
            for _ in range(rng.randint(1, 8)):
                body[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif kind == "overwrite" and n:
            span = rng.randint(1, min(16, n - at))
            body[at : at + span] = bytes(rng.getrandbits(8) for _ in range(span))
        elif kind == "insert":
            body[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 32)))
        elif kind == "delete" and n:
            del body[at : at + rng.randint(1, min(64, n - at))]
        elif kind == "repeat" and n:
            span = rng.randint(1, min(64, n - at))
            body[at:at] = body[at : at + span]
        else:  # a varint (length, count, dimension, dtype branch...) replaced by an extreme one
            value = rng.choice((-1, -(2**31), 2**31, 2**40, 2**62, -(2**63), 2**63 - 1, 0))
            body[at : at + rng.randint(1, 3)] = avro_long(value)
        return body


def readable_id(codec: Codec, value: bytes, max_payload_bytes: int) -> str | None:
    """The request id the job answers ``value`` under: the decoded request's, or the one its
    decoding error names (None: a dead letter only)."""
    try:
        return codec.decode_request(value, max_payload_bytes).request_id
    except DecodeError as exc:
        return exc.request_id


def load_corpus(folder: Path, max_bytes: int, codec: Codec, max_payload_bytes: int) -> Iterator[BadRecord]:
    """The records of ``folder``: every regular file, recursively, in name order, each once.

    Files with the same bytes are sent once (a dead letter is matched by its bytes). A record's
    ``request_id`` is the id the job can read from it (:func:`readable_id`), and its ``reason``
    and ``status`` are None: any answer (see the module).

    Args:
        folder: The corpus.
        max_bytes: The requests topic's record limit: a larger file is refused, as the broker would.
        codec: The codec of the data contract.
        max_payload_bytes: The job's payload limit (the job reads no id past it but the peeked one).

    Raises:
        ValueError: ``folder`` is not a folder or holds no file, a file is over ``max_bytes``, or
            two files carry the same readable request id (the job de-duplicates by id: only one
            could be answered).
    """
    if not folder.is_dir():
        raise ValueError(f"--bad-corpus {folder}: not a folder")
    seen: set[bytes] = set()
    ids: dict[str, Path] = {}
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"--bad-corpus {folder}: no file in it (each file is the value of one record)")
    records = []
    for path in files:
        value = path.read_bytes()
        if len(value) > max_bytes:
            raise ValueError(f"--bad-corpus: {path} is {len(value)} bytes, more than the requests topic takes "
                             f"({max_bytes}); the broker would refuse it")
        if value in seen:
            continue
        seen.add(value)
        rid = readable_id(codec, value, max_payload_bytes)
        if rid is not None:
            if rid in ids:
                raise ValueError(f"--bad-corpus: {ids[rid]} and {path} both carry request id {rid[:80]!r}; the job "
                                 "de-duplicates by id, so give each record its own")
            ids[rid] = path
        records.append(BadRecord(CORPUS, value, None, rid, None))
    yield from records
