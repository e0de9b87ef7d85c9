"""The front doors' side of the control topic: read the routing back, check and publish commands.

:class:`ControlAdmin` is what ``aimass deploy``/``split``/... , the client library and the
gateway call. It reads the whole control topic (compacted: small) and applies it with the same
rules the job applies (:class:`aimass.control.routing.Routing`), so it can show what serves
what and refuse a command with the job's own message before publishing it. The job checks
every command again: a command published by anyone else gets the same verdict there.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import DeadLetter
from aimass.control.blobs import sha256_of, upload
from aimass.control.commands import Action, Command, ControlCodec, Deploy, Marker
from aimass.control.routing import Refusal, Routing
from aimass.kafka_config import python_client_config
from aimass.settings import EngineSettings, Settings


class AdminError(Exception):
    """A command that is not published: the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ShadowCounts:
    """Shadow results on the shadow topic for one model."""

    agree: int = 0
    disagree: int = 0

    @property
    def agreement(self) -> float | None:
        total = self.agree + self.disagree
        return self.agree / total if total else None


def now_ms() -> int:
    return int(time.time() * 1000)


class ControlAdmin:
    """Reads and writes the control topic of ``settings`` (a context manager; closes its clients)."""

    def __init__(self, settings: Settings, activation_ms: int = 1000) -> None:
        self.settings = settings
        self.activation_ms = activation_ms
        self.codec = ControlCodec(settings.paths.schemas_dir)
        self._producer: Any = None

    def __enter__(self) -> ControlAdmin:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None

    # -- Kafka ---------------------------------------------------------------------------------

    def _client(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.settings.kafka.bootstrap, **python_client_config(self.settings.kafka)}

    @property
    def producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            from aimass.stack.kafka import KafkaBroker

            KafkaBroker(self.settings).ensure_topics()  # a bare broker: the control topics first
            self._producer = KafkaProducer(acks="all", max_request_size=2 << 20, linger_ms=2, **self._client())
        return self._producer

    def _read_all(self, topic: str, timeout_s: float = 20.0) -> list[Any]:
        """Every record of ``topic`` up to its end now (all partitions)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, isolation_level="read_committed",
                                 **self._client())
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                return []
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            records: list[Any] = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise AdminError(f"could not read {topic} to its end in {timeout_s:.0f} s; is Kafka at "
                                     f"{self.settings.kafka.bootstrap} up (aimass up)?")
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend(batch)
            return sorted(records, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    # -- reading -------------------------------------------------------------------------------

    def routing(self) -> tuple[Routing, list[tuple[Command, Refusal]]]:
        """The routing the control topic builds now, and the commands on it the rules refuse."""
        routing, refused = Routing(), []
        for record in self._read_all(self.settings.kafka.control_topic):
            try:
                command = self.codec.decode(record.value or b"")
            except DecodeError:
                continue
            outcome = routing.apply(command)
            if isinstance(outcome, Refusal):
                refused.append((command, outcome))
        return routing, refused

    def refusals(self, last: int = 10) -> list[DeadLetter]:
        """The latest control dead letters the job wrote (newest last)."""
        codec = Codec(self.settings.paths.schemas_dir)
        letters = []
        for record in self._read_all(self.settings.kafka.control_dead_letter_topic)[-last:]:
            try:
                letters.append(codec.decode_dead_letter(record.value or b""))
            except DecodeError:
                continue
        return letters

    def shadow_counts(self) -> dict[str, ShadowCounts]:
        """Agreement per model over the shadow topic's results."""
        codec = Codec(self.settings.paths.schemas_dir)
        counts: Counter[tuple[str, bool]] = Counter()
        for record in self._read_all(self.settings.kafka.shadow_topic):
            try:
                result = codec.decode_result(record.value or b"", self.settings.job.output_record_limit)
            except DecodeError:
                continue
            if result.route is not None and result.route.agrees is not None:
                counts[(result.model, result.route.agrees)] += 1
        models = sorted({model for model, _ in counts})
        return {m: ShadowCounts(counts[(m, True)], counts[(m, False)]) for m in models}

    # -- writing -------------------------------------------------------------------------------

    def publish(self, action: Action, in_ms: int | None = None) -> Command:
        """Check ``action`` against the routing read back, then publish it; the command sent.

        ``in_ms``: when it takes effect, from now (default: ``activation_ms``).

        Raises:
            AdminError: the rules refuse it (the job would too), with their message.
        """
        issued = now_ms()
        command = Command(action, issued, issued + (self.activation_ms if in_ms is None else in_ms))
        if not isinstance(action, Marker):
            routing, _ = self.routing()
            outcome = routing.apply(command)
            if isinstance(outcome, Refusal):
                raise AdminError(f"{command.describe()}: refused: {outcome.message}")
        self._send(command)
        return command

    def _send(self, command: Command) -> None:
        future = self.producer.send(self.settings.kafka.control_topic, key=command.key.encode("utf-8"),
                                    value=self.codec.encode(command), partition=0)
        self.producer.flush()
        future.get(timeout=30)

    def mark(self, job_name: str) -> str:
        """Publish a start marker for ``job_name``; its token (the job waits for it)."""
        token = f"{job_name}/{uuid.uuid4()}"
        self._send(Command(Marker(token), now_ms()))
        return token

    def deploy(self, directory: Path, *, upload_bytes: bool = True, in_ms: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> Command:
        """Check a version directory (``<model>/<version>/`` with both files) loads, upload its
        ``model.onnx`` to the blob topic (or name it by ``file://`` when ``upload_bytes`` is
        false), and publish its deploy.

        Raises:
            AdminError: the directory is not a loadable version, or the rules refuse it.
        """
        from aimass.serving.models import METADATA_FILE, MODEL_FILE, ModelError, ModelSpec
        from aimass.serving.sessions import SessionCache

        directory = Path(directory).resolve()
        try:
            spec = ModelSpec.load(directory)
            SessionCache(EngineSettings(use_gpu=False)).get(spec)  # it must load here before anywhere else
        except ModelError as exc:
            raise AdminError(f"{directory} is not a deployable version: {exc.message}") from None
        sha256, size = sha256_of(directory / MODEL_FILE)
        metadata = (directory / METADATA_FILE).read_text(encoding="utf-8")
        routing, _ = self.routing()
        probe = routing.apply(Command(Deploy(spec.name, spec.version, directory.as_uri(), sha256, size, metadata), 0))
        if isinstance(probe, Refusal):
            raise AdminError(f"deploy {spec.name} {spec.version}: refused: {probe.message}")
        uri = directory.as_uri()
        if upload_bytes:
            uri = upload(self.producer, self.settings.kafka.blob_topic, directory / MODEL_FILE, sha256,
                         progress=progress).uri
        return self.publish(Deploy(spec.name, spec.version, uri, sha256, size, metadata), in_ms)

    def sync(self, models_dir: Path, at_submit: bool = False) -> Iterator[str]:
        """Publish a ``file://`` deploy for every version under ``models_dir`` the control topic
        does not know; yields a line per version published or refused. ``at_submit``: effective
        for every request (the job is not running yet), else in ``activation_ms``."""
        routing, _ = self.routing()
        for found in local_deploys(models_dir, routing, 0 if at_submit else now_ms() + self.activation_ms):
            if isinstance(found, str):
                yield found
                continue
            self._send(found)
            action = found.action
            assert isinstance(action, Deploy)
            yield f"deployed {action.model} {action.version} from {action.uri}"


def local_deploys(models_dir: Path, routing: Routing, effective_at_ms: int | None = None) -> Iterator[Command | str]:
    """A deploy command (applied to ``routing``) for every version under ``models_dir`` that
    ``routing`` lacks, or a line saying why a version is not deployed. ``effective_at_ms``: 0
    at submit (the folder's versions route every request, including those already queued),
    None (now) for a sync while the job runs."""
    from aimass.serving.models import METADATA_FILE, MODEL_FILE, ModelRepository

    repository = ModelRepository(models_dir)
    for name in repository.names():
        for version in repository.versions(name):
            known = routing.models.get(name, {}).get("versions", {}).get(version)
            directory = (Path(models_dir) / name / version).resolve()
            try:
                sha256, size = sha256_of(directory / MODEL_FILE)
                metadata = (directory / METADATA_FILE).read_text(encoding="utf-8")
            except OSError as exc:
                yield f"sync: {name} {version}: skipped: {exc}"
                continue
            if known is not None:
                if known["sha256"] != sha256:
                    yield (f"sync: {name} {version}: {directory / MODEL_FILE} differs from the deployed bytes; "
                           "it keeps serving the deployed ones (deploy the change as a new version)")
                continue
            command = Command(Deploy(name, version, directory.as_uri(), sha256, size, metadata), now_ms(),
                              effective_at_ms)
            outcome = routing.apply(command)
            if isinstance(outcome, Refusal):
                yield f"sync: {name} {version}: not deployed: {outcome.message}"
                continue
            yield command


def describe_routing(routing: Routing) -> list[dict[str, Any]]:
    """Per model, what serves what (for ``aimass routes`` and the gateway): JSON-ready rows."""
    rows = []
    for model in sorted(routing.models):
        route = routing.route(model) or {}
        rows.append({
            "model": model,
            "versions": {v: {"sha256": e["sha256"][:12], "location": e["uri"].split(":", 1)[0],
                             "serving": e["serving"]} for v, e in route.get("versions", {}).items()},
            "default": route.get("default"),
            "aliases": route.get("aliases", {}),
            "split": {v: b / 10_000 for v, b in route.get("split", [])},
            "shadow": None if not route.get("shadow") else {
                "version": route["shadow"]["version"], "fraction": route["shadow"]["buckets"] / 10_000},
        })
    return rows


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)
