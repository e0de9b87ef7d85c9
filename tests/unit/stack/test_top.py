"""aimass top's frame rendered, without a stack."""

from __future__ import annotations

from rich.console import Console

from aimass.settings import Settings
from aimass.stack.top import Frame, render


def test_a_frame_renders_every_figure_and_the_problems() -> None:
    frame = Frame(0.0, "abc123 RUNNING", requests_per_s=1520.4, results_per_s=1498.0, backlog=37, batch_p50=12.0,
                  inference_p50_ms=1.6, inference_p99_ms=4.2, latency_p50_ms=230.0, latency_p99_ms=1040.0,
                  errors={"INVALID_INPUT": 3.0}, dead_letters={"INVALID_INPUT": 3.0, "UNDECODABLE": 1.0},
                  busy={0: 0.42, 1: 0.38}, checkpoint_ms=180.0, checkpoints_failed=0,
                  problems=("taskmanager-1 metrics: connection refused",))
    console = Console(width=140, record=True, color_system=None)
    console.print(render(frame, Settings()))
    text = console.export_text()
    for piece in ("job abc123 RUNNING", "requests in /s", "1,520", "backlog", "37", "latency p99", "1,040 ms",
                  "inference p50", "1.6 ms", "42 %", "UNDECODABLE", "checkpoints failed (all)",
                  "! taskmanager-1 metrics: connection refused"):
        assert piece in text, (piece, text)


def test_a_frame_without_a_job_says_why() -> None:
    console = Console(width=120, record=True, color_system=None)
    console.print(render(Frame(0.0, "no job: no running job named 'aimass-inference'"), Settings()))
    text = console.export_text()
    assert "no running job named" in text and "requests in /s" in text and "none" in text
