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


#: The marker :func:`control_rows` ends with: pass it to ``build_pipeline`` as ``ready_token``.
READY = "pipeline-test/ready"


def control_rows(settings: Settings, extra: list[Any] | None = None) -> list[Any]:
    """Control records deploying every version of the model folder (``file://``), then ``extra``
    commands, then the marker :data:`READY`, as the control source's rows."""
    from pyflink.common import Row

    from aimass.control.admin import local_deploys
    from aimass.control.commands import Command, ControlCodec, Marker
    from aimass.control.routing import Routing

    codec = ControlCodec(settings.paths.schemas_dir)
    commands = [c for c in local_deploys(settings.paths.models_dir, Routing(), 0) if isinstance(c, Command)]
    commands += [*(extra or []), Command(Marker(READY), 0)]
    return [Row(codec.encode(c), "control", 0, offset) for offset, c in enumerate(commands)]
