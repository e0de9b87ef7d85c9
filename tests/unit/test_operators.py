"""Operator uids are what savepoints restore by: pinned here, so a change is a decision."""

from __future__ import annotations

from aimass import operators


def test_uids_are_unique_and_unchanged() -> None:
    uids = [op.uid for op in operators.ALL]
    assert uids == ["control", "route", "micro-batch", "infer-batch", "split-outputs", "dedup"]
    assert len({op.name for op in operators.ALL}) == len(operators.ALL)


def test_the_job_names_its_operators_from_the_one_table() -> None:
    from aimass.settings import PROJECT_ROOT

    job = (PROJECT_ROOT / "flink_jobs" / "inference_job.py").read_text(encoding="utf-8")
    assert '.uid("' not in job and '.name("' not in job  # no literal names or uids left in the job
    for op in operators.ALL:
        assert any(f".name({const}.name).uid({const}.uid)" in job for const in _constants(op))


def _constants(op: operators.Operator) -> list[str]:
    return [name for name, value in vars(operators).items() if value is op and name != "op"]
