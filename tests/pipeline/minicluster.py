"""The job's configuration for a local MiniCluster run of the pipeline tests."""

from __future__ import annotations

import os
import sys
from typing import Any

from aimass.settings import PROJECT_ROOT, Settings


def minicluster_configuration(settings: Settings) -> Any:
    """:func:`job_configuration` with this interpreter as the job's Python.

    The MiniCluster's JVM finds Python on PATH and the project on PYTHONPATH (without the venv
    on PATH it hangs at start).
    """
    from flink_jobs.inference_job import job_configuration

    os.environ["PYTHONPATH"] = str(PROJECT_ROOT)
    venv_bin = os.path.dirname(sys.executable)
    if not os.environ.get("PATH", "").startswith(venv_bin + os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    config = job_configuration(settings)
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    return config
