"""docs/CONFIGURATION.md's table of fixed Flink and Kafka values agrees with the code."""

from __future__ import annotations

import re

from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack.flink import FlinkCluster
from aimass.stack.kafka import KafkaBroker

ROW = re.compile(r"^\| (job|cluster|broker|connector) \| `([^`]+)` \| `([^`]+)` \|", re.M)


def _rows() -> list[tuple[str, str, str]]:
    text = (PROJECT_ROOT / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
    return ROW.findall(text)


def test_every_fixed_value_in_the_table_is_the_codes() -> None:
    from flink_jobs.inference_job import job_configuration

    settings = Settings()
    held = {
        "job": job_configuration(settings).to_dict(),
        "cluster": {k: str(v) for k, v in FlinkCluster(settings).config().items()},
        "broker": KafkaBroker(settings).properties(),
    }
    job_source = (PROJECT_ROOT / "flink_jobs" / "inference_job.py").read_text(encoding="utf-8")
    rows = _rows()
    assert len(rows) >= 20, "the table was not found"
    for where, key, value in rows:
        if where == "connector":
            assert f"'{key}' = '{value}'" in job_source, (key, value)
        else:
            assert held[where].get(key) == value, (where, key, held[where].get(key), value)
