"""Loading the inference core inside a TaskManager, one operator at a time.

Thread mode (Python inside the TaskManager JVM, via pemja) has two traps for C extensions:

1. **Concurrent imports.** Every Python operator of a TaskManager shares one interpreter and is
   opened concurrently, one Java thread each. Two of them importing C extensions (onnxruntime,
   numpy, fastavro) at the same moment deadlocked the TaskManager (PyFlink 2.2.1, pemja 0.5.7).
   So the ``udfs`` modules import nothing heavy at module level, and :func:`open_server` imports
   and builds the core under one process-wide lock.
2. **pybind11 and the GIL-state API.** pemja runs each operator on a thread state made with
   ``PyThreadState_New``. On the Java thread that first initialised the interpreter, CPython's
   GIL-state slot still points at the *main* thread state, so ``PyGILState_Ensure`` there tries
   to take the GIL it already holds, under another thread state, and waits forever. pybind11
   calls ``PyGILState_Ensure`` once when a module is first imported, so ``import onnxruntime``
   hung in its extension init. A thread started by Python's ``threading`` registers its own
   thread state properly, so the heavy imports and the first session build run on one such
   short-lived thread (:func:`_on_fresh_thread`); afterwards pybind11 never asks again.

After :func:`open_server` returns, every heavy module is in ``sys.modules``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aimass.serving.batches import BatchServer
    from aimass.settings import Settings

_LOCK = threading.Lock()
T = TypeVar("T")


def _on_fresh_thread(work: Callable[[], T]) -> T:
    """Run ``work`` on a new Python thread and return its result (or raise its error)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="aimass-core-loader", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _build(settings: Settings) -> BatchServer:
    from aimass.contract.codec import Codec
    from aimass.control.store import ModelStore
    from aimass.kafka_config import python_client_config
    from aimass.serving.batches import BatchServer
    from aimass.serving.engine import InferenceEngine
    from aimass.serving.sessions import SessionCache

    def consumer() -> object:  # reads a deployed version's chunks from the blob topic
        from kafka import KafkaConsumer

        return KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False,
                             group_id=None, fetch_max_bytes=16 * 1024 * 1024,
                             max_partition_fetch_bytes=8 * 1024 * 1024, **python_client_config(settings.kafka))

    def catalog() -> list[dict[str, object]]:  # the deployed versions, read from the control topic
        from aimass.control.admin import ControlAdmin

        routing, _ = ControlAdmin(settings).routing()
        return [{**routing.update(model, None), "seq": -1} for model in routing.models]

    job = settings.job
    sessions = SessionCache(settings.engine)
    cache = settings.engine.model_cache_dir or settings.paths.state_dir / "model-cache"
    # Versions arrive as route updates in the batches themselves (Route forwards every update to
    # every lane before any request routed by it), so the store starts empty.
    store = ModelStore(cache, sessions, consumer, settings.engine.model_load_timeout_s, catalog)
    engine = InferenceEngine(store, sessions, job)
    return BatchServer(Codec(settings.paths.schemas_dir), engine, job, store=store)


def open_server(settings: Settings) -> BatchServer:
    """Import and build the batch server (codec, engine, sessions), serialised across operators."""
    with _LOCK:
        return _on_fresh_thread(lambda: _build(settings))
