"""Settings of a stack of its own, next to a user's: the one builder the tests, the bench and
the fault campaigns use (each with its own port block and state folder, so all three and the
demo stack can run on one machine at once).

``isolated_env("test", TEST_PORTS, offset=100)`` moves every port by 100 and the state folder
to ``.state/test-100``; the jars folder is shared (``make setup`` fills it once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aimass.settings import PROJECT_ROOT


@dataclass(frozen=True, slots=True)
class Ports:
    """A stack's port block."""

    kafka: int
    """The broker; its KRaft controller is ``kafka + 1``, the SASL_SSL listener ``kafka + 2``."""
    rest: int
    """Flink's REST API and web UI; the Prometheus endpoints are the next ports (``rest + 1``: the
    JobManager, ``rest + 2 + N``: TaskManager N), clear of every block moved by a multiple of 100."""
    flink: int
    """Flink's RPC is ``flink + 123``, the blob server ``flink + 124``, TaskManagers ``flink + 200`` to ``+ 299``."""
    store: int = 0
    """A local S3 store's API (SeaweedFS, its other ports the nine after it) holding the stack's
    checkpoints and savepoints in bucket ``aimass-<name>``; 0: checkpoints in the state folder."""


#: The integration tests' stack (``tests/conftest.py``).
TEST_PORTS = Ports(kafka=29092, rest=18081, flink=26000)
#: The bench and soak stack (``bench/stack.py``).
BENCH_PORTS = Ports(kafka=39092, rest=38081, flink=36000)
#: The fault campaigns' stack (``aimass/faults/run.py``).
FAULTS_PORTS = Ports(kafka=49092, rest=48081, flink=46000)
#: The object-storage tests' stack, checkpoints on a local S3 store (``tests/integration/test_object_storage.py``).
S3_TEST_PORTS = Ports(kafka=29492, rest=18481, flink=26400, store=27300)


def isolated_env(name: str, ports: Ports, offset: int = 0, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``AIMASS_*`` variables of the stack ``name``: its ports (moved by ``offset``), its state
    folder ``.state/<name>`` (``<name>-<offset>`` when moved), and ``extra`` settings."""

    def port(value: int) -> str:
        return str(value + offset)

    store = {
        "AIMASS_STORAGE_LOCAL_PORT": port(ports.store),
        "AIMASS_STORAGE_URI": f"s3://aimass-{name}/state",
        "AIMASS_STORAGE_S3_ENDPOINT": f"http://127.0.0.1:{port(ports.store)}",
    } if ports.store else {}
    return {
        **store,
        "AIMASS_PATHS_STATE_DIR": str(PROJECT_ROOT / ".state" / (name if not offset else f"{name}-{offset}")),
        "AIMASS_PATHS_JARS_DIR": str(PROJECT_ROOT / ".state" / "jars"),
        "AIMASS_KAFKA_PORT": port(ports.kafka),
        "AIMASS_KAFKA_CONTROLLER_PORT": port(ports.kafka + 1),
        "AIMASS_KAFKA_SECURE_PORT": port(ports.kafka + 2),
        "AIMASS_FLINK_REST_PORT": port(ports.rest),
        "AIMASS_FLINK_RPC_PORT": port(ports.flink + 123),
        "AIMASS_FLINK_BLOB_PORT": port(ports.flink + 124),
        "AIMASS_FLINK_TASKMANAGER_RPC_PORTS": f"{port(ports.flink + 200)}-{port(ports.flink + 299)}",
        "AIMASS_FLINK_METRICS_PORT": port(ports.rest + 1),
        **(extra or {}),
    }
