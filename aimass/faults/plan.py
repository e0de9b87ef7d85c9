"""What a fault campaign sends and breaks: :class:`Plan`, the short :data:`SMOKE` plan, and the
sizes taken from the job's limits. Pure: no Kafka, no Flink."""

from __future__ import annotations

import random
from dataclasses import dataclass

from aimass.contract.codec import Codec
from aimass.faults.malformed import BadRecords
from aimass.settings import Settings


@dataclass(frozen=True)
class Plan:
    """What a campaign sends and breaks."""

    requests: int = 20_000
    """Valid ``digits`` requests of the mixed phase."""
    rate: float = 100.0
    """Records per second sent (valid and bad together)."""
    bad_fraction: float = 0.01
    """Share of bad records mixed into the valid traffic."""
    bad_only: int = 180
    """Bad records of the bad-input-only phase (no fault)."""
    kills: int = 5
    """TaskManager SIGKILLs during the mixed phase."""
    broker_restarts: int = 1
    """Broker stop/start cycles during the mixed phase."""
    checkpoint_kill_share: float = 0.5
    """Share of the kills that first wait for an IN_PROGRESS checkpoint."""
    seed: int = 1
    """Seed of every random choice (records, moments, which kills aim at a checkpoint)."""
    settle_s: float = 180.0
    """Longest wait for all answers once traffic and faults are over."""
    recover_timeout_s: float = 240.0
    """Longest wait for results to flow again after a fault before the campaign gives up."""
    min_fault_spacing_s: float = 6.0
    """Least time between a fault's recovery and the next fault."""
    broker_down_s: float = 3.0
    """How long the broker stays stopped."""
    max_taskmanager_down_s: float = 2.0
    """A killed TaskManager is started again after a random pause up to this long."""
    python_worker_kills: int = 0
    """SIGKILLs of the TaskManager's Python worker processes (process mode only: in thread mode
    Python runs inside the TaskManager's JVM, and a TaskManager kill is the worker's death)."""
    back_to_back_kills: int = 1
    """Extra TaskManager kills that strike 1-8 s after another fault, while the job is still
    failing over or restoring (not after it recovered)."""
    throughput_records: int = 10_000
    """Valid requests in each of four bursts (clean, with bad records, clean, with bad records)
    that measure the throughput lost to bad input; 0 skips them."""
    near_limit_oversized: bool = True
    """Make every other oversized record as large as the requests topic takes: its dead letter
    (the record plus an envelope) must still fit the output topics (a crash loop found by the
    first campaign, since fixed)."""
    fuzz_share: float = 0.25
    """Share of the bad records that are seeded mutations of valid requests
    (:class:`aimass.faults.fuzz.Mutator`: records no list of kinds foresaw; a new seed, new ones)."""
    corpus: str | None = None
    """Folder of files, each the value of one bad record, sent in phase 1
    (:func:`aimass.faults.fuzz.load_corpus`): malformed inputs from outside the repository."""


SMOKE = Plan(requests=2_000, rate=50.0, bad_only=45, kills=2, broker_restarts=1, back_to_back_kills=0,
             throughput_records=0, settle_s=120.0, min_fault_spacing_s=4.0)
"""The short version: a couple of kills and a broker restart over ~2,000 requests."""


def largest_value(settings: Settings) -> int:
    """About the largest record value the requests topic takes: its ``max.message.bytes``
    (``request_record_limit``) less the batch and record envelope (~130 bytes with our key)."""
    return settings.job.request_record_limit - 160


def bad_records(settings: Settings, codec: Codec, rng: random.Random, prefix: str, near_limit: bool) -> BadRecords:
    """The campaign's maker of bad records, its oversized ones sized from the job's limits."""
    near = largest_value(settings) if near_limit else None
    return BadRecords(codec, rng, settings.job.max_payload_bytes, prefix, near_limit_bytes=near)
