"""The blocking client: submit now (a non-blocking, batching produce), read later (a background
feed of the results topic into a bounded store).

    from aimass.client import Client

    with Client() as client:                      # settings from AIMASS_* variables
        rid = client.submit("digits", {"pixels": x})
        ...                                       # go on with other work
        result = client.result(rid, timeout=10)
        result.output("label")
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.client import validation
from aimass.client.errors import PayloadTooLarge, ResultTimeout, SubmitFailed, Unavailable
from aimass.client.feed import ResultFeed, Start
from aimass.client.store import ResultStore
from aimass.contract.codec import Codec
from aimass.contract.limits import MAX_REQUEST_ID_BYTES, MESSAGE_OVERHEAD_BYTES
from aimass.contract.messages import InferenceRequest, InferenceResult, Tensor, now_ms
from aimass.kafka_config import python_client_config
from aimass.settings import Settings

if TYPE_CHECKING:
    from aimass.serving.models import ModelRepository

#: Kafka record overhead allowed on top of the largest payload.


def outputs(result: InferenceResult) -> dict[str, np.ndarray]:
    """A result's outputs as ``{name: numpy array}``."""
    return {t.name: t.to_numpy() for t in result.outputs}


class Client:
    """Submit inference requests to Kafka and read their results later.

    Args:
        settings: Settings, or a Kafka bootstrap ``host:port`` string (everything else then
            from the environment). None: :meth:`Settings.load`.
        start: Where the result feed starts: ``now`` (results of requests submitted from now
            on) or ``beginning`` (every result still on the compacted topic).
        store: The result store to fill (default: one sized by ``settings.gateway``).
        validate: Check requests against the model repository when its folder exists here.
        max_payload_bytes: Largest encoded request (default ``settings.job.max_payload_bytes``,
            what the job accepts).
        kafka_timeout_ms: Bound on every blocking Kafka step: connecting, and waiting for
            metadata or buffer space in :meth:`submit` (default ``settings.gateway.kafka_timeout_ms``).
        read_results: Start the result feed (False for submit-only use).

    TLS and SASL come from ``settings.kafka.client_properties`` (see aimass/kafka_config.py).

    Raises:
        SettingsError: client properties kafka-python cannot honour.
    """

    def __init__(self, settings: Settings | str | None = None, *, start: Start = "now",
                 store: ResultStore | None = None, validate: bool = True, max_payload_bytes: int | None = None,
                 kafka_timeout_ms: int | None = None, read_results: bool = True) -> None:
        if isinstance(settings, str):
            self.settings, self.bootstrap = Settings.load(), settings
        else:
            self.settings = settings if settings is not None else Settings.load()
            self.bootstrap = self.settings.kafka.bootstrap
        s = self.settings
        self.kafka_config = python_client_config(s.kafka)
        self.codec = Codec(s.paths.schemas_dir)
        self.max_payload_bytes = max_payload_bytes or s.job.max_payload_bytes
        self.kafka_timeout_ms = kafka_timeout_ms or s.gateway.kafka_timeout_ms
        self.store = store if store is not None else ResultStore(
            s.gateway.store_size, s.gateway.ttl_s, max_bytes=s.gateway.store_bytes)
        self.repository: ModelRepository | None = None
        if validate and s.paths.models_dir.is_dir():
            from aimass.serving.models import ModelRepository

            self.repository = ModelRepository(s.paths.models_dir)
        self._producer: Any = None
        self._producer_lock = threading.Lock()
        self.feed: ResultFeed | None = None
        if read_results:
            self.feed = ResultFeed(
                self.bootstrap, s.kafka.results_topic, self.store, self.codec,
                read_committed=s.job.delivery == "exactly-once", start=start,
                max_age_s=s.gateway.ttl_s if start == "beginning" else None,
                connect_timeout_ms=self.kafka_timeout_ms, kafka_config=self.kafka_config,
                max_bytes=s.job.output_record_limit,
            ).start_thread()

    # -- submitting ------------------------------------------------------------------------

    def prepare(self, model: str, tensors: Sequence[Tensor], version: str | None = None,
                deadline_ms: int | None = None, request_id: str | None = None,
                priority: int = 0) -> tuple[InferenceRequest, bytes]:
        """Check and encode a request without sending it.

        Raises:
            InvalidRequest: Malformed tensors, inputs that disagree with the model's declaration
                (when the model folder here has that version); :class:`PayloadTooLarge` beyond
                the payload limit. A model or version the folder lacks is not refused: it may be
                deployed through the control topic or be an alias; the job answers it.
        """
        validation.check_names(model, version)
        validation.check_tensors(tensors)
        if self.repository is not None:
            spec = validation.known_spec(self.repository, model, version)
            if spec is not None:  # else deployed through the control topic, or an alias: the job decides
                validation.check_against_spec(spec, tensors)
        if request_id is not None and not request_id:
            raise validation.InvalidRequest("request_id must not be empty")
        if request_id is not None and len(request_id.encode()) > MAX_REQUEST_ID_BYTES:
            # The job would answer with a dead letter only (no result to wait for).
            raise validation.InvalidRequest(
                f"request_id of {len(request_id.encode())} bytes exceeds {MAX_REQUEST_ID_BYTES} bytes (UTF-8)"
            )
        request = InferenceRequest(
            request_id=request_id or str(uuid.uuid4()), model=model, inputs=tuple(tensors),
            created_at_ms=now_ms(), version=version, deadline_ms=deadline_ms, priority=priority,
        )
        try:
            data = self.codec.encode_request(request)
        except ValueError as exc:
            raise validation.InvalidRequest(str(exc)) from None
        if len(data) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"request of {len(data)} bytes exceeds the limit of {self.max_payload_bytes} bytes; "
                f"split it into requests of fewer rows"
            )
        return request, data

    def submit(self, model: str, inputs: Mapping[str, np.ndarray], version: str | None = None,
               deadline_ms: int | None = None, *, request_id: str | None = None, priority: int = 0) -> str:
        """Send one request and return its id at once (the produce is batched in the background).

        Args:
            model: Model name in the repository.
            inputs: Input name -> numpy array; the first dimension is the row count.
            version: Pin a model version (None: the newest).
            deadline_ms: Epoch milliseconds after which the result is no longer wanted.
            request_id: Choose the id (default: a new uuid4); a resubmitted id yields one result.
            priority: Higher first (0..job.max_priority; each level is worth job.priority_aging_ms of
                waiting, docs/SCHEDULING.md).

        Raises:
            InvalidRequest: Refused before reaching Kafka (see :meth:`prepare`).
            Unavailable: Kafka could not be reached, or had no room, within ``kafka_timeout_ms``.
        """
        request, data = self.prepare(model, validation.tensors_from_numpy(inputs), version, deadline_ms,
                                     request_id, priority)
        self.send(request.request_id, data)
        return request.request_id

    def submit_many(self, model: str, batch: Iterable[Mapping[str, np.ndarray]], version: str | None = None,
                    deadline_ms: int | None = None) -> list[str]:
        """Submit one request per mapping of ``batch``; returns their ids in order."""
        return [self.submit(model, inputs, version, deadline_ms) for inputs in batch]

    def send(self, request_id: str, data: bytes) -> Any:
        """Produce an encoded request keyed by its id; returns kafka-python's future.

        A delivery that fails later is recorded in the store: :meth:`result` then raises
        :class:`SubmitFailed`.

        Raises:
            Unavailable: No broker, no metadata or no buffer space within ``kafka_timeout_ms``.
        """
        from kafka.errors import KafkaError

        producer = self._get_producer()
        self.store.expect(request_id)
        try:
            future = producer.send(self.settings.kafka.requests_topic, value=data, key=request_id.encode())
        except KafkaError as exc:
            raise Unavailable(f"Kafka at {self.bootstrap} did not take the request: {exc}") from None
        future.add_errback(lambda exc: self.store.fail(request_id, SubmitFailed(request_id, exc)))
        return future

    def _get_producer(self) -> Any:
        if self._producer is not None:
            return self._producer
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        with self._producer_lock:
            if self._producer is None:
                timeout = self.kafka_timeout_ms
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                        max_request_size=self.max_payload_bytes + MESSAGE_OVERHEAD_BYTES,
                        max_block_ms=timeout, bootstrap_timeout_ms=timeout, request_timeout_ms=timeout,
                        delivery_timeout_ms=2 * timeout + 5, **self.kafka_config,
                    )
                except KafkaError as exc:
                    hint = ""
                    if "security_protocol" in self.kafka_config:
                        hint = (f" (over {self.kafka_config['security_protocol']}: a wrong password or CA fails like "
                                "this too; the broker's log names the cause)")
                    raise Unavailable(
                        f"cannot reach Kafka at {self.bootstrap} within {timeout} ms: {exc}{hint}"
                    ) from None
        return self._producer

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every submitted request has been handed to Kafka."""
        if self._producer is not None:
            self._producer.flush(timeout)

    # -- reading ---------------------------------------------------------------------------

    def result(self, request_id: str, timeout: float | None = 30.0) -> InferenceResult:
        """The result of ``request_id``, waiting up to ``timeout`` seconds (None: forever).

        Raises:
            ResultTimeout: None arrived in time.
            SubmitFailed: Kafka refused the request, so none will come.
        """
        found = self.store.wait(request_id, timeout)
        if found is None:
            raise ResultTimeout(request_id, -1.0 if timeout is None else timeout)
        return found

    def results(self, request_ids: Iterable[str] | None = None,
                timeout: float | None = None) -> Iterator[InferenceResult]:
        """Results as they arrive.

        Args:
            request_ids: Only these (those already in the store first); the iterator ends when
                all are in. None: every result arriving from now on.
            timeout: Stop after this many seconds in all (None: no limit).
        """
        wanted = None if request_ids is None else set(request_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.store.subscribe() as sub:
            if wanted is not None:
                for rid in list(wanted):
                    found = self.store.get(rid)
                    if found is not None:
                        wanted.discard(rid)
                        yield found
            while wanted is None or wanted:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                item = sub.get(timeout=0.5 if remaining is None else min(0.5, remaining))
                if item is None or item.request_id is None:
                    continue
                if wanted is None:
                    yield item
                elif item.request_id in wanted:
                    wanted.discard(item.request_id)
                    yield item

    # -- lifecycle -------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Flush pending requests, stop the feed and close the producer."""
        if self._producer is not None:
            self._producer.close(timeout=timeout)
            self._producer = None
        if self.feed is not None:
            self.feed.stop(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
