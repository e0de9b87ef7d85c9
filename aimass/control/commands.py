"""The control topic's commands (``schemas/control.avsc``), typed, and their Avro codec.

Plain frozen dataclasses: the CLI, the client library, the job's control step and the tests
speak these; :class:`ControlCodec` turns them into single-object-encoded bytes and back.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader

from aimass.contract.codec import HEADER_SIZE, DecodeError, _load, _parse, _write
from aimass.contract.messages import Reason
from aimass.settings import PathSettings

_NS = "ai.aimass."


@dataclass(frozen=True, slots=True)
class Deploy:
    """Make ``model`` ``version`` servable; its ``model.onnx`` is at ``uri``."""

    model: str
    version: str
    uri: str
    sha256: str
    size_bytes: int
    metadata_json: str


@dataclass(frozen=True, slots=True)
class Retire:
    """Stop serving a version."""

    model: str
    version: str


@dataclass(frozen=True, slots=True)
class SetAlias:
    """Point ``alias`` at ``version`` (None removes the alias)."""

    model: str
    alias: str
    version: str | None


@dataclass(frozen=True, slots=True)
class SetSplit:
    """Weighted split of the requests that name no version (empty clears it)."""

    model: str
    weights: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class SetShadow:
    """Mirror ``fraction`` of the model's traffic to ``version`` (None clears it)."""

    model: str
    version: str | None
    fraction: float = 1.0


@dataclass(frozen=True, slots=True)
class Promote:
    """``stable`` := ``version``; the split cleared (and the shadow when it is ``version``)."""

    model: str
    version: str


@dataclass(frozen=True, slots=True)
class Rollback:
    """Split and shadow cleared; ``stable`` back to before the last promote."""

    model: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A job's start marker: the job routes requests once its control input has passed it."""

    token: str


Action = Deploy | Retire | SetAlias | SetSplit | SetShadow | Promote | Rollback | Marker
_ACTIONS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (Deploy, Retire, SetAlias, SetSplit, SetShadow, Promote, Rollback, Marker)
}


@dataclass(frozen=True, slots=True)
class Command:
    """One record of the control topic."""

    action: Action
    issued_at_ms: int
    effective_at_ms: int | None = None
    command_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def effective_ms(self) -> int:
        """When the command takes effect (``effective_at_ms``, else ``issued_at_ms``)."""
        return self.issued_at_ms if self.effective_at_ms is None else self.effective_at_ms

    @property
    def key(self) -> str:
        """The compaction key: what the command configures (docs/CONTROL.md)."""
        a = self.action
        if isinstance(a, Deploy | Retire):
            return f"{a.model}/versions/{a.version}"
        if isinstance(a, SetAlias):
            return f"{a.model}/aliases/{a.alias}"
        if isinstance(a, SetSplit):
            return f"{a.model}/split"
        if isinstance(a, SetShadow):
            return f"{a.model}/shadow"
        if isinstance(a, Promote | Rollback):
            return f"{a.model}/promote"
        return f"_marker/{a.token.rsplit('/', 1)[0]}"  # the token less its unique tail: one per job

    def describe(self) -> str:
        """One line for people: what the command does."""
        a = self.action
        if isinstance(a, Deploy):
            return f"deploy {a.model} {a.version} from {a.uri}"
        if isinstance(a, Retire):
            return f"retire {a.model} {a.version}"
        if isinstance(a, SetAlias):
            return f"alias {a.model} {a.alias} -> {a.version or '(removed)'}"
        if isinstance(a, SetSplit):
            return f"split {a.model} " + (" ".join(f"{v}={w:g}" for v, w in a.weights) or "(cleared)")
        if isinstance(a, SetShadow):
            return f"shadow {a.model} " + (f"{a.version} {a.fraction:g}" if a.version else "(cleared)")
        if isinstance(a, Promote):
            return f"promote {a.model} {a.version}"
        if isinstance(a, Rollback):
            return f"rollback {a.model}"
        return f"marker {a.token}"


class ControlCodec:
    """Encoder and decoder of control commands (``schemas/control.avsc``)."""

    def __init__(self, schemas_dir: Path | None = None) -> None:
        directory = Path(schemas_dir) if schemas_dir is not None else PathSettings().schemas_dir
        named: dict[str, Any] = {}
        _parse(directory / "tensor.avsc", named)
        self._schema = _load(directory / "control.avsc", named)

    @property
    def header(self) -> bytes:
        """The 10 bytes every command starts with."""
        return self._schema.header

    def encode(self, command: Command) -> bytes:
        """Encode a command. Raises ValueError when a field does not fit its Avro type."""
        a = command.action
        body: dict[str, Any]
        if isinstance(a, SetSplit):
            body = {"model": a.model, "weights": [{"version": v, "weight": float(w)} for v, w in a.weights]}
        else:
            body = {name: getattr(a, name) for name in a.__slots__}  # type: ignore[union-attr]
        record = {
            "command_id": command.command_id,
            "issued_at_ms": command.issued_at_ms,
            "effective_at_ms": command.effective_at_ms,
            "action": (_NS + type(a).__name__, body),
        }
        return _write(self._schema, record)

    def decode(self, data: bytes) -> Command:
        """Decode a command.

        Raises:
            DecodeError: UNDECODABLE or WRONG_SCHEMA (with the command id when readable).
        """
        data = bytes(data)
        if data[:HEADER_SIZE] != self._schema.header:
            raise DecodeError(
                Reason.WRONG_SCHEMA if data[:2] == b"\xc3\x01" else Reason.UNDECODABLE,
                f"not a control command: expected header {self._schema.header.hex(' ')}, "
                f"got {data[:HEADER_SIZE].hex(' ') or 'nothing'}",
            )
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            record: Any = schemaless_reader(stream, self._schema.parsed, None, return_record_name=True)
        except Exception as exc:  # fastavro raises many types on garbage
            raise DecodeError(Reason.UNDECODABLE, f"not a valid control command: {type(exc).__name__}: {exc}") from exc
        if stream.tell() != len(data):
            raise DecodeError(Reason.UNDECODABLE, f"{len(data) - stream.tell()} bytes after the control command")
        name, body = record["action"]
        cls = _ACTIONS[name.removeprefix(_NS)]
        if cls is SetSplit:
            action: Action = SetSplit(body["model"], tuple((w["version"], w["weight"]) for w in body["weights"]))
        else:
            action = cls(**body)
        return Command(action, record["issued_at_ms"], record["effective_at_ms"], record["command_id"])
