"""The Prometheus text parser the metrics test and the CLI read the cluster with."""

# ruff: noqa: E501 - exposition lines as Flink writes them

from aimass.stack.prometheus import parse, total

TEXT = """# HELP flink_x results
# TYPE flink_x counter
flink_taskmanager_job_task_operator_model_version_status_results{model="digits",version="2",status="OK",subtask_index="0",} 41.0
flink_taskmanager_job_task_operator_model_version_status_results{model="digits",version="2",status="OK",subtask_index="1",} 9.0
flink_taskmanager_job_task_operator_model_version_status_results{model="digits",version="none",status="INVALID_INPUT",subtask_index="0",} 3.0
flink_taskmanager_job_task_operator_batchSize{operator_name="micro-batch",quantile="0.5",} 12.0
flink_jobmanager_numRegisteredTaskManagers 1.0
garbage line
"""


def test_samples_and_sums_over_subtasks() -> None:
    samples = parse(TEXT)
    assert len(samples) == 5
    assert total(samples, "_results", model="digits", status="OK") == 50
    assert total(samples, "_results", status="INVALID_INPUT") == 3
    assert total(samples, "numRegisteredTaskManagers") == 1
    assert total(samples, "_batchSize", quantile="0.5") == 12
