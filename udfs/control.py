"""ApplyControl: the control topic's records to route updates, in keyed state.

Keyed by a constant, so one instance holds the whole routing (:class:`aimass.control.routing.Routing`,
as JSON in a ValueState, checkpointed with the job). Accepted commands become route updates on
the main output, broadcast to the Java ``Route`` operator; refused or undecodable records
become dead letters on :data:`CONTROL_DEAD_LETTERS`. All the logic is in
:class:`aimass.control.step.ControlStep`; this only wires it to Flink state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pyflink.common.typeinfo import Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from aimass.settings import Settings

if TYPE_CHECKING:
    from aimass.control.step import ControlStep

#: Control dead letters, as ``Row(v)`` for the control dead-letter sink.
CONTROL_DEAD_LETTERS = OutputTag(
    "control-dead-letters", Types.ROW_NAMED(["v"], [Types.PRIMITIVE_ARRAY(Types.BYTE())]))


class ApplyControl(KeyedProcessFunction):
    """``Row(value, topic, partition, offset)`` -> route update bytes (and dead letters)."""

    def __init__(self, settings: Settings, restore_marker: bool = False) -> None:
        self.settings = settings
        self.restore_marker = restore_marker
        self.step: ControlStep | None = None
        self.state: Any = None
        self.token: str | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        from aimass.contract.codec import Codec
        from aimass.control.commands import ControlCodec
        from aimass.control.step import ControlStep

        schemas = self.settings.paths.schemas_dir
        self.step = ControlStep(ControlCodec(schemas), Codec(schemas))
        self.state = runtime_context.get_state(ValueStateDescriptor("routing", Types.STRING()))
        if self.restore_marker:
            # Every (re)start: a marker at the end of the control topic. ``route`` holds the
            # requests it restores or replays until this marker has passed, so every command
            # after the checkpoint is applied first (as in the attempt that failed).
            from aimass.control.admin import ControlAdmin

            with ControlAdmin(self.settings) as admin:
                self.token = admin.mark(f"restore/{self.settings.job.name}")
    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        from pyflink.common import Row

        assert self.step is not None  # built in open()
        raw = bytes(value[0] or b"")
        outcome = self.step.handle(raw, value[1] or "", value[2] or 0, value[3] or 0, self.state.value())
        if outcome.state is not None:
            self.state.update(outcome.state)
        if outcome.update is not None and not self._foreign_restore_marker(outcome.update):
            yield outcome.update
        if outcome.dead_letter is not None:
            yield CONTROL_DEAD_LETTERS, Row(outcome.dead_letter)

    def _foreign_restore_marker(self, update: bytes) -> bool:
        """A restore marker written by an earlier attempt (only this attempt's may ready ``route``)."""
        return update.startswith(b'{"kind":"ready","token":"restore/') and (
            self.token is None or update != _ready(self.token))


def _ready(token: str) -> bytes:
    import json

    return json.dumps({"kind": "ready", "token": token}, separators=(",", ":")).encode("utf-8")
