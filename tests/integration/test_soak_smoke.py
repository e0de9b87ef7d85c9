"""The soak harness end to end in about 2 minutes (``bench.soak --smoke``): 200 requests/s into a
fresh AI Mass job on the session's stack, a sample every 5 s. Only what can structurally fail is
asserted: the samples, their fields, results flowing, every request answered, the report files
and plots. No timing asserts and no target verdicts: the full soak is `make soak`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimass.settings import Settings
from aimass.stack.local import LocalStack
from bench.soak import SoakOptions, run_soak

pytestmark = pytest.mark.integration

DURATION_S, INTERVAL_S, RATE = 120.0, 5.0, 200.0
FIELDS = {
    "t_s", "interval_s", "offered_rate", "sent", "results", "results_in_interval", "results_per_s", "backlog",
    "cpu_s", "cpu_cores", "cpu_us_per_request", "rss_bytes", "p50_ms", "p99_ms", "latency_count", "duplicates",
    "job_state", "taskmanager_pids", "ckpt_id", "ckpt_size_bytes", "ckpt_checkpointed_bytes", "ckpt_duration_ms",
    "ckpts_completed", "ckpts_failed", "lag", "dead_letters", "disk_logs_bytes", "disk_checkpoints_bytes",
    "disk_state_bytes",
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def soak_taskmanager(local_stack: LocalStack) -> Iterator[None]:
    """A TaskManager of the soak's own (the session's job holds the first one's slots)."""
    before = len([tm for tm in local_stack.flink.taskmanagers() if tm.pid() is not None])
    try:
        local_stack.set_taskmanagers(before + 1)
        yield
    finally:
        local_stack.set_taskmanagers(before)


def test_soak_smoke_samples_every_field_answers_every_request_and_writes_its_report(
    local_stack: LocalStack, soak_taskmanager: None, test_settings: Settings, tmp_path: Path
) -> None:
    options = SoakOptions(duration_s=DURATION_S, rate=RATE, interval_s=INTERVAL_S, out=tmp_path,
                          warmup_requests=100, smoke=True)
    summary = run_soak(options, test_settings, manage_stack=False)

    run = summary["meta"]["run"]
    assert run["failed"] is None, run
    assert run["sent"] == int(RATE * DURATION_S) + 1
    assert run["missing"] == 0 and run["answered"] == run["sent"], run
    assert run["checked"] == run["sent"] and run["not_ok"] == 0, run  # the smoke decodes every result

    samples = [json.loads(line) for line in (tmp_path / "soak.jsonl").read_text().splitlines()]
    expected = DURATION_S / INTERVAL_S
    assert 0.75 * expected <= len(samples) <= expected + 1, len(samples)
    for sample in samples:
        assert set(sample) >= FIELDS, FIELDS - set(sample)
        assert sample["rss_bytes"] > 0 and sample["taskmanager_pids"], sample
        assert sample["job_state"] not in ("FAILED", "CANCELED", "FINISHED"), sample
    later = samples[len(samples) // 2 :]
    assert all(s["results_per_s"] > 0 for s in later), [s["results_per_s"] for s in later]
    assert any(s["cpu_s"] > 0 for s in later) and any(s["p99_ms"] is not None for s in later)
    assert any(s["ckpt_id"] is not None for s in later) and summary["checkpoints"], "no completed checkpoint seen"
    assert any(s["disk_logs_bytes"] > 0 for s in samples)

    assert {t["name"] for t in summary["targets"]} and all("met" in t for t in summary["targets"])
    stored = json.loads((tmp_path / "soak.json").read_text())
    assert stored["meta"]["run"]["sent"] == run["sent"]
    assert "## Targets" in (tmp_path / "soak.md").read_text()
    pngs = sorted(tmp_path.glob("soak-*.png"))
    assert {p.name for p in pngs} == {f"soak-{n}.png" for n in ("load", "cpu", "latency", "checkpoints", "memory")}
    for png in pngs:
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 1000, png
