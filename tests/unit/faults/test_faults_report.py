"""docs/RELIABILITY.md is what ``python -m aimass.faults.report`` renders from the kept reports."""

from __future__ import annotations

from aimass.faults.report import load_reports, render
from aimass.settings import PROJECT_ROOT


def test_the_reliability_page_is_rendered_from_the_kept_reports_and_the_report_module() -> None:
    reports = load_reports(PROJECT_ROOT / "docs" / "reliability")
    assert reports, "no campaign reports kept in docs/reliability"
    page = (PROJECT_ROOT / "docs" / "RELIABILITY.md").read_text()
    assert render(reports) == page, "edit aimass/faults/report.py, then run `python -m aimass.faults.report`"
