"""The soak's arithmetic and report: durations, windows, CPU per request, targets, the results
bookkeeping, options and overrides, Markdown and plots. No Kafka, no Flink."""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import InferenceResult, Status, Timings
from bench import soak_report
from bench.soak import parse, progress_line
from bench.soak_job import check_overrides, job_settings
from bench.soak_probe import Checkpoints, Schedule, SoakCollector, dir_bytes, split_id
from bench.soak_report import Windows, cpu_per_request_us, inside, parse_duration, slope, summarize
from bench.workload import request_id

MB = 1024 * 1024


def _sample(t: float, interval: float = 5.0, **values: Any) -> dict[str, Any]:
    base = {"t_s": t, "interval_s": interval, "results_in_interval": 1000, "cpu_s": 0.05, "results_per_s": 200.0,
            "cpu_cores": 0.01, "backlog": 200, "rss_bytes": 500 * MB, "ckpt_size_bytes": 10 * MB,
            "disk_logs_bytes": 1000, "disk_checkpoints_bytes": 5000, "disk_state_bytes": 9000}
    return {**base, **values}


def _run(duration: float, interval: float = 5.0, **series: Any) -> list[dict[str, Any]]:
    """Samples every ``interval`` s; each keyword is a function of t giving that field."""
    times = np.arange(interval, duration + 1e-9, interval)
    return [_sample(float(t), interval, **{k: f(float(t)) for k, f in series.items()}) for t in times]


def _meta(duration: float, rate: float = 200.0, ttl: int | None = 120) -> dict[str, Any]:
    return {"duration_s": duration, "rate": rate, "checkpoint_interval_ms": 1000, "started_epoch_ms": 1_000_000,
            "dedup_ttl_s": ttl}


def _targets(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in summary["targets"]}


def test_durations_read_seconds_minutes_and_hours() -> None:
    assert [parse_duration(d) for d in ("90", "120s", "30m", "1.5h", " 2M ")] == [90, 120, 1800, 5400, 120]
    for bad in ("", "m", "ten", "-5s", "0"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_windows_of_the_reference_soak_and_a_short_one_scaled_in_proportion() -> None:
    full = Windows.of(1800)
    assert (full.scale, full.warmup_s, full.early, full.late) == (1.0, 120, (120, 420), (1500, 1800))
    assert full.middle_third == (600, 1200) and full.last_third == (1200, 1800)
    long = Windows.of(3600)
    assert long.early == (120, 420) and long.late == (3300, 3600)  # absolute windows past 30 minutes
    short = Windows.of(120)
    assert short.scale == pytest.approx(1 / 15)
    assert short.early == pytest.approx((8, 28)) and short.late == pytest.approx((100, 120))
    assert "short run (120 s)" in short.note() and "scaled" in short.note()
    assert "30-minute" in full.note() and "scaled" not in full.note()


def test_samples_fall_in_a_window_by_their_interval_midpoint() -> None:
    samples = _run(60)
    assert [s["t_s"] for s in inside(samples, (10, 30))] == [15, 20, 25, 30]
    assert [s["t_s"] for s in inside(samples, (50, 60))] == [55, 60]  # the last sample at the end counts


def test_cpu_per_request_is_total_cpu_over_total_results_not_a_mean_of_ratios() -> None:
    samples = [_sample(5, cpu_s=1.0, results_in_interval=1000), _sample(10, cpu_s=1.0, results_in_interval=9000)]
    assert cpu_per_request_us(samples) == pytest.approx(200.0)  # 2 s / 10,000; the mean of ratios says 555
    assert cpu_per_request_us([_sample(5, results_in_interval=0)]) is None


def test_slope_of_a_line_and_of_too_little() -> None:
    assert slope([0, 1, 2, 3], [5, 7, 9, 11]) == pytest.approx(2.0)
    assert slope([0, 1], [0, 1]) is None and slope([1, 1, 1], [0, 1, 2]) is None


def test_a_steady_soak_meets_every_target() -> None:
    rng = np.random.default_rng(3)
    samples = _run(1800, backlog=lambda t: 200 + int(rng.integers(-150, 150)),
                   rss_bytes=lambda t: 600 * MB + int(rng.integers(0, 5 * MB)))
    checkpoints = [(1_000_000 + i * 1000, 40 + i % 7, 10 * MB) for i in range(1800)]
    summary = summarize(samples, checkpoints, _meta(1800))
    assert all(t["met"] for t in summary["targets"]), summary["targets"]
    assert all(not t["note"] for t in summary["targets"])  # TTL 120 s reached long before the middle third
    fig = summary["figures"]
    assert fig["cpu_us_per_request_early"] == pytest.approx(50.0) and fig["checkpoints_completed"] == 1800
    assert json.loads(json.dumps(summary)) == json.loads(json.dumps(summary))  # JSON-able


def test_a_soak_whose_cost_grows_misses_the_cpu_size_rss_and_backlog_targets() -> None:
    def grows(start: float, per_s: float) -> Any:
        return lambda t: start + per_s * t

    samples = _run(1800, cpu_s=grows(0.05, 0.05 / 900), ckpt_size_bytes=grows(10 * MB, 20 * MB / 1800),
                   rss_bytes=grows(500 * MB, 300 * MB / 1800), backlog=grows(100, 2.0))
    slow = [(1_000_000 + i * 1000, 200 + (i % 100) * 2, 10 * MB) for i in range(1800)]  # p99 ~ 398 ms of 1000
    targets = _targets(summarize(samples, slow, _meta(1800)))
    assert not any(t["met"] for t in targets.values()), targets
    assert targets["cpu_per_request"]["value"] == pytest.approx((0.05 + 0.05 * 1650 / 900) / (0.05 + 0.05 * 270 / 900),
                                                       rel=0.02)
    assert targets["checkpoint_p99"]["value"] == pytest.approx(0.398, abs=0.002)
    assert targets["backlog"]["value"] == pytest.approx(2.0 * 1675 / 200, rel=0.02)  # 2/s over ~1,675 s


def test_a_ttl_longer_than_the_run_is_said_to_be_no_steady_state_verdict() -> None:
    summary = summarize(_run(600), [], _meta(600, ttl=3600))
    size = _targets(summary)["checkpoint_size"]
    assert "not reached" in size["note"]
    assert "no job.dedup_ttl_s" in _targets(summarize(_run(600), [], _meta(600, ttl=None)))["checkpoint_size"]["note"]
    assert _targets(summary)["checkpoint_p99"]["met"] is None  # no checkpoint: not measured, not missed


def test_warm_up_checkpoints_do_not_count_towards_the_p99() -> None:
    started = 1_000_000
    checkpoints = [(started + i * 1000, 5000 if i < 8 else 50, 1) for i in range(120)]  # slow in the first 8 s
    summary = summarize(_run(120), checkpoints, _meta(120))  # warm-up: 8 s
    assert _targets(summary)["checkpoint_p99"]["value"] == pytest.approx(0.05)


def test_summary_of_no_samples_reports_nothing_measured() -> None:
    summary = summarize([], [], _meta(120))
    assert all(t["met"] is None for t in summary["targets"])
    assert "| target |" in soak_report.markdown({**summary, "meta": {**summary["meta"], "run": {"failed": "x"}}})


def test_markdown_names_every_target_the_windows_and_a_failure() -> None:
    summary = summarize(_run(120), [], {**_meta(120), "model": "digits", "delivery": "exactly-once",
                                         "overrides": {"job.dedup_ttl_s": "60"},
                                         "run": {"failed": "the job is FAILED at 40 s", "sent": 24001}})
    text = soak_report.markdown(summary)
    for target in summary["targets"]:
        assert target["name"] in text
    assert "short run (120 s)" in text and "`job.dedup_ttl_s=60`" in text
    assert "FAILED" in text and "24,001" in text


def test_latency_percentiles_of_an_array_and_of_nothing() -> None:
    assert soak_report.latency_percentiles(array("f", [])) == {"p50_ms": None, "p99_ms": None}
    out = soak_report.latency_percentiles(array("f", range(1, 101)))
    assert out["p50_ms"] == pytest.approx(50.5) and out["p99_ms"] == pytest.approx(99.01)


def _collector(count: int, rate: float = 100.0, start: float = 10.0, check_every: int = 1) -> SoakCollector:
    fake = SoakCollector.__new__(SoakCollector)  # no consumer: only the bookkeeping is under test
    schedule = Schedule(phase=200, count=count, rate=rate, start=start)
    fake.schedule, fake.check_every, fake.codec = schedule, check_every, Codec()
    fake.answered = bytearray((count + 7) // 8)
    fake.results = fake.other = fake.duplicates = fake.checked = fake.not_ok = fake.batch_rows = 0
    fake.latencies_ms = array("f")
    return fake


def _result(rid: str, status: Status = Status.OK, batch: int = 8) -> bytes:
    result = InferenceResult(request_id=rid, model="digits", status=status, completed_at_ms=1, version="1",
                             error=None if status is Status.OK else "boom", timings=Timings(batch_size=batch))
    return Codec().encode_result(result)


def test_collector_times_from_the_schedule_counts_once_and_spots_errors() -> None:
    c = _collector(20)
    ids = [request_id(7, 200, i) for i in range(20)]
    c.note(ids[5], _result(ids[5]), now=10.0 + 0.05 + 0.120)  # due at 10.05, readable 120 ms later
    c.note(ids[5], _result(ids[5]), now=11.0)  # a duplicate (at-least-once): not counted, not timed
    c.note(ids[6], _result(ids[6], Status.INTERNAL_ERROR), now=10.5)
    c.note(request_id(7, 0, 3), None, now=10.5)  # the warm-up's phase
    c.note("not-an-id", None, now=10.5)
    assert (c.results, c.duplicates, c.other, c.checked, c.not_ok, c.batch_rows) == (2, 1, 2, 2, 1, 8)
    assert c.latencies_ms[0] == pytest.approx(120.0, abs=0.01)
    assert c.missing(20) == 18 and c.missing(5) == 5 and c.missing(6) == 5 and c.missing(7) == 5


def test_collector_checks_only_every_nth_result() -> None:
    c = _collector(100, check_every=10)
    for i in range(100):
        rid = request_id(7, 200, i)
        c.note(rid, _result(rid), now=20.0)
    assert c.results == 100 and c.checked == 10 and c.missing(100) == 0


def test_split_id_reads_phase_and_index_and_refuses_other_keys() -> None:
    assert split_id(request_id(20240601, 200, 123_456)) == (200, 123_456)
    assert split_id("x") == (-1, -1) and split_id("") == (-1, -1)


def test_checkpoints_keep_every_completed_one_across_overlapping_histories() -> None:
    ck = Checkpoints()
    ck.note({"counts": {"failed": 0}, "history": [
        {"id": 2, "status": "IN_PROGRESS"}, {"id": 1, "status": "COMPLETED", "trigger_timestamp": 10,
                                             "end_to_end_duration": 40, "state_size": 100}]})
    ck.note({"counts": {"failed": 1}, "history": [
        {"id": 3, "status": "FAILED"},
        {"id": 2, "status": "COMPLETED", "trigger_timestamp": 20, "end_to_end_duration": 60, "state_size": 120},
        {"id": 1, "status": "COMPLETED", "trigger_timestamp": 10, "end_to_end_duration": 40, "state_size": 100}]})
    assert ck.completed == {1: (10, 40, 100), 2: (20, 60, 120)} and ck.failed == 1


def test_dir_bytes_sums_files_skips_named_folders_and_follows_no_links(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_bytes(b"x" * 100)
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "data").write_bytes(b"x" * 1000)
    (tmp_path / "link").symlink_to(tmp_path / "kafka" / "data")
    assert dir_bytes(tmp_path) == 1100 and dir_bytes(tmp_path, skip=("kafka",)) == 100
    assert dir_bytes(tmp_path / "missing") == 0


def test_overrides_must_name_a_setting_and_reach_the_job() -> None:
    check_overrides({"job.dedup_ttl_s": "120", "job.checkpoint_interval_ms": "2000"})
    for bad in ("job.no_such_field", "nosection.x", "job"):
        with pytest.raises(ValueError, match="no such setting"):
            check_overrides({bad: "1"})
    options, _, _ = parse(["--smoke", "--set", "job.checkpoint_interval_ms=2000"])
    settings, sets = job_settings(_bench_settings(), "soak-x", options)
    assert sets["job.checkpoint_interval_ms"] == "2000" and settings.job.checkpoint_interval_ms == 2000
    assert settings.job.name == sets["job.name"] == "aimass-soak"
    assert settings.kafka.requests_topic == sets["kafka.requests_topic"] == "bench.soak-x.requests"
    assert settings.job.consumer_group == "bench-soak-x" and settings.job.delivery == "exactly-once"


def _bench_settings() -> Any:
    from aimass.settings import Settings
    from bench.stack import bench_env

    return Settings.load(env=bench_env(0))


def test_command_line_defaults_smoke_and_flags() -> None:
    options, offset, keep = parse([])
    assert (options.duration_s, options.share, options.rate, options.interval_s) == (1800, 0.5, None, 5.0)
    assert options.out.name == "soak" and (offset, keep) == (0, False)
    smoke, _, _ = parse(["--smoke"])
    assert (smoke.duration_s, smoke.rate, smoke.interval_s, smoke.out.name) == (120, 200, 5.0, "soak-smoke")
    custom, offset, keep = parse(["--duration", "10m", "--rate", "900", "--delivery", "at-least-once",
                                  "--set", "job.dedup_ttl_s=60", "--port-offset", "7", "--keep-stack"])
    assert (custom.duration_s, custom.rate, custom.delivery, offset, keep) == (600, 900, "at-least-once", 7, True)
    assert custom.overrides == {"job.dedup_ttl_s": "60"}
    for bad in (["--set", "job.dedup_ttl_s"], ["--duration", "soon"], ["--share", "0"], ["--set", "job.nope=1"]):
        with pytest.raises(SystemExit):
            parse(bad)


def test_progress_line_shows_the_figures_and_missing_ones_as_dashes() -> None:
    line = progress_line(_sample(60, offered_rate=200, cpu_us_per_request=51.2, lag=None, p50_ms=30.0, p99_ms=900.0,
                                 ckpt_duration_ms=45, job_state="RUNNING"), 120)
    assert line.startswith("[soak    60/120 s] 200/s of 200/s")
    assert "lag –" in line and "p50/p99 30/900 ms" in line and "ckpt 10.0 MB 45 ms" in line


def test_plots_are_png_files(tmp_path: Path) -> None:
    from bench.soak_plot import plots

    samples = _run(120, p50_ms=lambda t: 30.0, p99_ms=lambda t: 80.0, ckpt_duration_ms=lambda t: 40)
    written = plots(samples, summarize(samples, [], {**_meta(120), "model": "digits"}), tmp_path)
    assert len(written) == 5
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
