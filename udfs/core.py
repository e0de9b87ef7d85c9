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
    from aimass.batches import BatchServer
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
    from aimass.batches import BatchServer
    from aimass.codec import Codec
    from aimass.engine import InferenceEngine
    from aimass.models import ModelRepository, SessionCache

    engine = InferenceEngine(ModelRepository(settings.paths.models_dir), SessionCache(settings.job), settings.job)
    engine.warm_up()
    return BatchServer(Codec(settings.paths.schemas_dir), engine, settings.job)


def open_server(settings: Settings) -> BatchServer:
    """Import and build the batch server (codec, engine, sessions), serialised across operators."""
    with _LOCK:
        return _on_fresh_thread(lambda: _build(settings))
