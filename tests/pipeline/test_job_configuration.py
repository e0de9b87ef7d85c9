"""The job's Flink configuration: incremental RocksDB checkpoints, and no settings a mode ignores."""

from __future__ import annotations

import pytest

from aimass.settings import Settings

pytestmark = pytest.mark.pipeline

PROCESS_MODE_ONLY = ("python.fn-execution.", "python.state.", "python.map-state.")


def _config(**overrides: str) -> dict[str, str]:
    from flink_jobs.inference_job import job_configuration

    settings = Settings.load(env={}, overrides=overrides)
    return dict(job_configuration(settings).to_dict())


def test_thread_mode_sets_nothing_that_only_process_mode_reads() -> None:
    config = _config()
    assert config["python.execution-mode"] == "thread"
    assert not [key for key in config if key.startswith(PROCESS_MODE_ONLY)]


def test_process_mode_bundles_batches() -> None:
    config = _config(**{"job.python_mode": "process"})
    assert config["python.execution-mode"] == "process"
    assert int(config["python.fn-execution.bundle.size"]) >= 1


def test_state_is_on_rocksdb_with_incremental_checkpoints_by_default() -> None:
    config = _config()
    assert config["state.backend.type"] == "rocksdb"
    assert config["execution.checkpointing.incremental"] == "true"
    assert config["state.backend.rocksdb.use-bloom-filter"] == "true"
