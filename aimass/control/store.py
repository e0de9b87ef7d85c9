"""A TaskManager's deployed model versions: fetched, checked and loaded in the background.

The batch step gives :meth:`ModelStore.apply` every route update ``Route`` forwards to its
lanes (docs/CONTROL.md); a version seen for the first time is fetched from its URI
(``file://`` in place, ``kafka:`` chunks into the model cache), its SHA-256 checked, its ONNX
Runtime session opened, all on one loader thread while requests keep being served.
:meth:`resolve` is what the engine asks: the spec of a routed version, waiting for its load
when it is still under way, or a :class:`~aimass.serving.models.ModelError` naming the model, the
version and the cause when it cannot serve here. It never answers with another version.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from aimass.contract.messages import Reason
from aimass.control.blobs import BlobError, fetch, sha256_of
from aimass.serving.models import METADATA_FILE, MODEL_FILE, ModelError, ModelSpec, version_key
from aimass.serving.sessions import SessionCache

log = logging.getLogger("aimass")


class ModelStore:
    """Versions announced by route updates, by ``(model, version)``; see the module docstring."""

    def __init__(self, cache_dir: Path, sessions: SessionCache, consumer_factory: Callable[[], Any] | None = None,
                 load_timeout_s: float = 120.0, catalog: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.sessions = sessions
        self.consumer_factory = consumer_factory
        self.load_timeout_s = load_timeout_s
        self.catalog = catalog
        self._asked: dict[tuple[str, str], float] = {}
        self._ready: dict[tuple[str, str | None], ModelSpec] = {}
        self._lock = threading.Lock()
        self._loads: dict[tuple[str, str], tuple[str, Future[ModelSpec], dict[str, Any]]] = {}
        self._seen: set[tuple[str, int]] = set()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aimass-model-loader")
        # A version a request waits for while its load is still queued behind others (after a
        # restart Route sends every deployed version again, in no useful order) loads here at once.
        self._urgent = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aimass-model-urgent")

    def apply(self, update: Mapping[str, Any]) -> None:
        """Register the versions of a route update (the same update again is a no-op)."""
        if update.get("kind") != "route":
            return
        model = update["model"]
        key = (model, int(update["seq"]))
        if key in self._seen:
            return
        if key[1] >= 0:  # catalog reads (seq -1) are not Route's updates
            self._seen.add(key)
        for version, entry in ((update.get("route") or {}).get("versions") or {}).items():
            with self._lock:
                known = self._loads.get((model, version))
                if known is not None and known[0] == entry["sha256"]:
                    continue
                future = self._loader.submit(self._load, model, version, dict(entry))
                self._loads[(model, version)] = (entry["sha256"], future, dict(entry))
                self._ready.pop((model, version), None)

    def resolve(self, name: str, version: str | None = None) -> ModelSpec:
        """The loaded spec of ``name`` ``version`` (``version`` None: the newest loaded, for tools).

        Raises:
            ModelError: UNKNOWN_MODEL when no route update named it here; INTERNAL_ERROR when it
                did not load (the cause in words) or is still loading after ``load_timeout_s``.
        """
        ready = self._ready.get((name, version))  # loaded: the hot path, no lock, no future
        if ready is not None:
            return ready
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise ModelError(Reason.UNKNOWN_MODEL, f"model {name!r} has no version deployed here")
            version = versions[-1]
        with self._lock:
            found = self._loads.get((name, version))
        if found is None and self._ask_catalog(name, version):
            with self._lock:
                found = self._loads.get((name, version))
        if found is None:
            raise ModelError(Reason.UNKNOWN_MODEL, f"model {name!r} version {version!r} is routed here but its deploy "
                                                   "has not reached this TaskManager")
        future = self._jump_queue(name, version, found[1])
        if future.done():
            if future.exception() is None:
                spec = future.result()
                self._ready[(name, version)] = spec
                return spec
        else:
            try:
                return future.result(timeout=self.load_timeout_s)
            except FutureTimeout:
                raise ModelError(Reason.INTERNAL_ERROR, f"model {name!r} version {version!r} is still loading on this "
                                                        f"TaskManager after {self.load_timeout_s:g} s: resubmit the "
                                                        "request (deploy big versions with a longer --in)") from None
            except Exception:  # noqa: BLE001, S110 - reported below, like a load that failed earlier
                pass
        exc = future.exception()
        cause = exc.message if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        raise ModelError(Reason.INTERNAL_ERROR,
                         f"model {name!r} version {version!r} could not be loaded on this TaskManager: {cause}")

    def _jump_queue(self, name: str, version: str, future: Future[ModelSpec]) -> Future[ModelSpec]:
        """``future``, or, when that load has not started yet, the same load started now on the
        urgent pool (a request is waiting for it; the queued one is cancelled)."""
        with self._lock:
            current = self._loads.get((name, version))
            if current is None or current[1] is not future:
                return current[1] if current is not None else future  # replaced meanwhile: wait on that one
            if future.done() or not future.cancel():  # running or finished: wait as it is
                return future
            urgent = self._urgent.submit(self._load, name, version, current[2])
            self._loads[(name, version)] = (current[0], urgent, current[2])
            return urgent

    def _ask_catalog(self, name: str, version: str) -> bool:
        """Register every deployed version the control topic names now (a version routed here
        before its update arrived: after a restore, records pending in MicroBatch can be flushed
        before the updates Route sends again). At most every 10 s per version."""
        if self.catalog is None or time.monotonic() - self._asked.get((name, version), -1e9) < 10:
            return False
        self._asked[(name, version)] = time.monotonic()
        try:
            updates = self.catalog()
        except Exception as exc:  # noqa: BLE001 - the request is then answered with the error below
            log.warning("could not read the deployed versions from the control topic: %s", exc)
            return False
        for update in updates:
            self.apply(update)
        return True

    def names(self) -> list[str]:
        with self._lock:
            return sorted({name for name, _ in self._loads})

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return sorted((v for n, v in self._loads if n == name), key=version_key)

    def wait_loaded(self, timeout_s: float | None = None) -> None:
        """Block until every load started so far has finished (tests and tools)."""
        with self._lock:
            futures = [future for _, future, _ in self._loads.values()]
        for future in futures:
            future.exception(timeout=timeout_s)

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._urgent.shutdown(wait=False, cancel_futures=True)

    # -- loading (on the loader thread) --------------------------------------------------------

    def _load(self, model: str, version: str, entry: dict[str, Any]) -> ModelSpec:
        uri, sha256 = entry["uri"], entry["sha256"]
        if uri == "graph:":  # a graph: its definition is its metadata, its steps are loaded as models
            try:
                return ModelSpec._from_json(entry["metadata"], Path("/graphs", model, version), ())
            except (ValueError, TypeError, KeyError) as exc:
                raise ModelError(Reason.INTERNAL_ERROR, f"graph {model!r} version {version!r}: {exc}") from None
        if uri.startswith("file://"):
            directory = Path(unquote(urlparse(uri).path))
            if (directory.parent.name, directory.name) != (model, version):
                raise ModelError(Reason.INTERNAL_ERROR,
                                 f"{uri} is not a <model>/<version> directory of {model} {version}")
            try:
                digest, _ = sha256_of(directory / MODEL_FILE)
            except OSError as exc:
                raise ModelError(Reason.INTERNAL_ERROR, f"{directory / MODEL_FILE}: {exc}") from None
            if digest != sha256:
                raise ModelError(Reason.INTERNAL_ERROR, f"{directory / MODEL_FILE} has sha256 {digest[:12]}..., the "
                                                        f"deploy says {sha256[:12]}... (changed since it was deployed)")
        else:
            if self.consumer_factory is None:
                raise ModelError(Reason.INTERNAL_ERROR, f"{uri}: no Kafka client configured to fetch it")
            directory = self.cache_dir / sha256[:16] / model / version
            directory.mkdir(parents=True, exist_ok=True)
            (directory / METADATA_FILE).write_text(json.dumps(entry["metadata"]), encoding="utf-8")
            if not (directory / MODEL_FILE).is_file():  # written only whole and checked (blobs.fetch)
                try:
                    fetch(self.consumer_factory, uri, sha256, directory / MODEL_FILE)
                except BlobError as exc:
                    raise ModelError(Reason.INTERNAL_ERROR, str(exc)) from None
        spec = ModelSpec.load(directory)
        self.sessions.get(spec)  # open (and validate) the session now, not on the first request
        log.info("model %s version %s loaded from %s", model, version, uri)
        return spec
