"""Loading the inference core inside a TaskManager, one operator at a time.

In thread mode every Python operator of a TaskManager shares one interpreter, and the
operators are unpickled and opened concurrently, one Java thread each. Two of them importing
C extensions (onnxruntime, numpy, fastavro) at the same moment deadlocked the TaskManager
(seen with PyFlink 2.2.1 / pemja 0.5.7: both tasks stuck in INITIALIZING, one thread inside
onnxruntime's extension init, the other waiting in unpickling). So the ``udfs`` modules
import nothing heavy at module level, and :func:`open_core` imports and builds the core under
one process-wide lock; after it returns, every heavy module is already in ``sys.modules``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from aimass.codec import Codec, DecodeError
    from aimass.engine import InferenceEngine
    from aimass.settings import Settings

_LOCK = threading.Lock()


class Core(NamedTuple):
    """What an operator delegates to."""

    codec: Codec
    engine: InferenceEngine
    decode_error: type[DecodeError]
    """:class:`aimass.codec.DecodeError` (imported late, see above)."""
    reject: Callable[..., Any]
    """:func:`aimass.rejects.reject`."""


def open_core(settings: Settings) -> Core:
    """Import and build the codec and the engine (serialised across operators)."""
    with _LOCK:
        from aimass.codec import Codec, DecodeError
        from aimass.engine import InferenceEngine
        from aimass.models import ModelRepository, SessionCache
        from aimass.rejects import reject

        codec = Codec(settings.paths.schemas_dir)
        engine = InferenceEngine(ModelRepository(settings.paths.models_dir), SessionCache(settings.job), settings.job)
        return Core(codec, engine, DecodeError, reject)
