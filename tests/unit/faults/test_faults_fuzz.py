"""Fuzzed bad records (aimass.faults.fuzz): seeded, framed, and each answered once, consistently.

Every mutated record is run through the job's path on a stand-in ``digits`` model (the
``answer`` helper of test_faults_malformed: route, decode, check, run), so a mutation that makes
an operator raise, or that would leave its id unanswered, fails here in milliseconds.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from test_faults_malformed import answer, engine  # noqa: F401 - the fixture is used by name

from aimass.contract.codec import HEADER_SIZE, Codec
from aimass.contract.messages import Status
from aimass.faults.fuzz import CORPUS, DESCRIPTIONS, FUZZED, Mutator, load_corpus
from aimass.faults.malformed import avro_string, digits_request
from aimass.serving.engine import InferenceEngine

CODEC = Codec()
PIXELS = np.zeros((1, 64), dtype=np.float32)


def test_mutations_are_repeatable_from_the_seed_and_differ_between_seeds() -> None:
    def values(seed: int) -> list[bytes]:
        maker = Mutator(CODEC, random.Random(seed), "s-")
        return [maker.make().value for _ in range(50)]

    # The request's created_at_ms is wall-clock: compare past it (the mutations themselves).
    assert [v[:40] for v in values(3)] == [v[:40] for v in values(3)]
    assert values(3) != values(4)


def test_every_fuzzed_record_keeps_its_framing_and_readable_id_and_differs_from_a_valid_one() -> None:
    maker = Mutator(CODEC, random.Random(5), "p-")
    for i in range(1, 200):
        record = maker.make()
        rid = f"p-fuzz-{i}"
        assert record.kind == FUZZED and record.request_id == rid
        assert record.reason is None and record.status is None  # any answer
        assert record.value[:HEADER_SIZE] == CODEC.encode_request(digits_request(rid, PIXELS))[:HEADER_SIZE]
        assert record.value[HEADER_SIZE : HEADER_SIZE + len(avro_string(rid))] == avro_string(rid)
        assert CODEC.peek_request_id(record.value) == rid


@pytest.mark.parametrize("seed", range(6))
def test_each_fuzzed_record_gets_one_consistent_answer(engine: InferenceEngine, seed: int) -> None:  # noqa: F811
    maker = Mutator(CODEC, random.Random(seed), "a-")
    statuses = set()
    for _ in range(150):
        record = maker.make()
        reason, request_id, status = answer(engine, record.value, 256 * 1024)
        assert request_id == record.request_id, record.value[:80]  # a result for its id, always
        assert status is not None
        statuses.add(status)
        # A dead letter exactly when the result is not ok, with a reason of the same status.
        assert (reason is None) == (status is Status.OK)
        if reason is not None:
            assert reason.status() is status
    assert Status.INVALID_INPUT in statuses  # the damage is felt


def test_corpus_sends_each_distinct_file_once_and_refuses_what_the_broker_would(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"\x00\x01")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"\xc3\x01junk")
    (tmp_path / "sub" / "copy-of-a").write_bytes(b"\x00\x01")
    records = list(load_corpus(tmp_path, 100, CODEC, 100))
    assert [r.value for r in records] == [b"\x00\x01", b"\xc3\x01junk"]
    assert all(r.kind == CORPUS and r.reason is None and r.request_id is None for r in records)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="more than the requests topic takes"):
        list(load_corpus(tmp_path, 100, CODEC, 100))
    with pytest.raises(ValueError, match="not a folder"):
        list(load_corpus(tmp_path / "none", 100, CODEC, 100))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no file in it"):
        list(load_corpus(tmp_path / "empty", 100, CODEC, 100))


def test_corpus_records_carry_the_id_the_job_reads_and_ids_must_not_repeat(tmp_path: Path) -> None:
    valid = CODEC.encode_request(digits_request("c-valid", PIXELS))
    (tmp_path / "valid").write_bytes(valid)  # not malformed at all: owed an ok result, not a dead letter
    (tmp_path / "cut").write_bytes(CODEC.encode_request(digits_request("c-cut", PIXELS))[:-7])
    (tmp_path / "schema").write_bytes(b"\xc3\x01" + bytes(8) + valid[10:])  # unknown fingerprint: no id
    records = {r.value: r.request_id for r in load_corpus(tmp_path, 4096, CODEC, 4096)}
    assert records[valid] == "c-valid" and records[b"\xc3\x01" + bytes(8) + valid[10:]] is None
    assert "c-cut" in records.values()
    (tmp_path / "again").write_bytes(valid[:-3])  # another record with the id c-valid
    with pytest.raises(ValueError, match="both carry request id 'c-valid'"):
        list(load_corpus(tmp_path, 4096, CODEC, 4096))


def test_both_kinds_are_described_on_one_line() -> None:
    assert set(DESCRIPTIONS) == {FUZZED, CORPUS}
    assert all(text and "\n" not in text for text in DESCRIPTIONS.values())
