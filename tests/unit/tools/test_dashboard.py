"""The dashboard's panels: the committed Grafana JSON is their rendering, and the local renderer
computes what Grafana's PromQL would (rates of summed counters, quantiles over subtasks)."""

from __future__ import annotations

import json

from aimass.settings import PROJECT_ROOT
from aimass.stack.prometheus import Sample
from aimass.tools.dashboard import PANELS, TM, Series, evaluate, grafana


def test_the_committed_grafana_dashboard_is_the_panels_rendering() -> None:
    committed = json.loads((PROJECT_ROOT / "deploy" / "grafana" / "aimass.json").read_text())
    assert committed == grafana(), "regenerate: python -m aimass.tools.dashboard grafana > deploy/grafana/aimass.json"
    assert len(committed["panels"]) == len(PANELS)
    exprs = [t["expr"] for p in committed["panels"] for t in p["targets"]]
    assert 'sum by (status) (rate(flink_taskmanager_job_task_operator_model_version_status_results[1m]))' in exprs
    assert any('task_name=~"batch_infer.*"' in e for e in exprs)


def _sample(value: float, **labels: str) -> Sample:
    return Sample(f"{TM}model_version_status_results", labels, value)


def test_rates_are_per_second_and_summed_by_the_panels_label() -> None:
    series = Series(f"{TM}model_version_status_results", "rate", by="status")
    before = [_sample(10, status="OK", subtask_index="0"), _sample(5, status="OK", subtask_index="1"),
              _sample(1, status="INVALID_INPUT", subtask_index="0")]
    now = [_sample(30, status="OK", subtask_index="0"), _sample(15, status="OK", subtask_index="1"),
           _sample(1, status="INVALID_INPUT", subtask_index="0"), _sample(4, status="DEADLINE_EXCEEDED")]
    assert evaluate(series, before, now, 5.0) == {"OK": 6.0, "INVALID_INPUT": 0.0, "DEADLINE_EXCEEDED": 0.8}
    assert evaluate(series, None, now, 0) == {}  # a rate needs two scrapes


def test_quantiles_over_subtasks_skip_empty_histograms() -> None:
    p50 = Series(f"{TM}batchSize", "mean", where=(("quantile", "0.5"),))
    samples = [Sample(f"{TM}batchSize", {"quantile": "0.5"}, 4.0), Sample(f"{TM}batchSize", {"quantile": "0.5"}, 8.0),
               Sample(f"{TM}batchSize", {"quantile": "0.5"}, float("nan")),
               Sample(f"{TM}batchSize", {"quantile": "0.99"}, 30.0)]
    assert evaluate(p50, None, samples, 0) == {"": 6.0}
