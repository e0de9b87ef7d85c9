"""The benchmark harness end to end, seconds long: raw ONNX Runtime and the plain loop on the
session's test stack, every request served and every output file written. No timing asserts:
figures from a few seconds on a shared machine mean nothing; the full run is `make bench`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimass.settings import Settings
from bench.progress import Progress
from bench.run import Options, run_bench

pytestmark = pytest.mark.integration


def test_bench_smoke_serves_every_request_and_writes_its_results(
    local_stack: object, test_settings: Settings, tmp_path: Path
) -> None:
    options = Options(
        systems=["raw-ort", "plain-loop"], models=["digits"], duration_s=1.0, rates=[0.5], smoke=True,
        out=tmp_path, warmup_requests=50, min_requests=200, max_requests=5000, start_timeout_s=60,
    )
    data = run_bench(options, test_settings, manage_stack=False, progress=Progress(2))

    raw = data["raw"]["digits"]
    assert "error" not in raw, raw
    assert set(raw["batch_sizes"]) == {"1", "8", "32"}
    assert all(f[mode]["rows"] > 0 for f in raw["batch_sizes"].values() for mode in ("ort", "ort+codec"))

    (run,) = data["runs"]
    assert "error" not in run, run
    assert run["system"] == "plain-loop"
    for phase in (run["warmup"], run["saturation"], *run["paced"]):
        assert phase["all_served"], phase
        assert phase["served"] == phase["sent"] > 0
        assert 1 <= phase["mean_batch_size"] <= 32
    assert run["saturation"]["rate"] > 0 and run["peak_rss_bytes"] > 0
    assert run["paced"][0]["p50_ms"] is not None

    for name in ("results.json", "results.md", "throughput.png", "latency.png", "cost.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "results.json").read_text())["runs"][0]["run"] == run["run"]
    assert "| plain-loop | digits |" in (tmp_path / "results.md").read_text()
