"""The job's control step, without Flink: one control record in, what it changes out.

``udfs/control.py`` runs it keyed by a constant (one instance, the routing in its keyed
state, checkpointed with the job); this module holds everything it does, so it is tested
without a cluster. A record that does not decode, or a command :class:`Routing` refuses, is
answered with a dead letter for the control dead-letter topic and changes nothing; the job
never fails on one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import DeadLetter, Reason, clip
from aimass.control.commands import ControlCodec
from aimass.control.routing import Refusal, Routing


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one control record does: the new routing state (None: unchanged), the route update
    for ``Route`` (UTF-8 JSON), or a dead letter (Avro, ``dead_letter.avsc``)."""

    state: str | None = None
    update: bytes | None = None
    dead_letter: bytes | None = None


class ControlStep:
    """Applies control records to the routing kept as JSON (see the module docstring)."""

    def __init__(self, control_codec: ControlCodec, codec: Codec) -> None:
        self.control_codec, self.codec = control_codec, codec

    def handle(self, value: bytes, topic: str, partition: int, offset: int, state: str | None) -> Outcome:
        command_id = None
        try:
            command = self.control_codec.decode(value)
            command_id = command.command_id
            routing = Routing.from_json(state)
            outcome = routing.apply(command)
        except DecodeError as exc:
            return self._refuse(value, topic, partition, offset, exc.reason, exc.message, None)
        except Exception as exc:  # noqa: BLE001 - a bug refuses this command, never restarts the job
            return self._refuse(value, topic, partition, offset, Reason.INTERNAL_ERROR,
                                f"the control step failed on this command (a bug): {type(exc).__name__}: {exc}",
                                command_id)
        if isinstance(outcome, Refusal):
            return self._refuse(value, topic, partition, offset, outcome.reason,
                                f"{command.describe()}: refused: {outcome.message}", command_id)
        new_state = None if outcome.get("kind") == "ready" else routing.to_json()
        return Outcome(new_state, json.dumps(outcome, separators=(",", ":")).encode("utf-8"))

    def _refuse(self, value: bytes, topic: str, partition: int, offset: int, reason: Reason, message: str,
                command_id: str | None) -> Outcome:
        letter = DeadLetter(bytes(value[: 64 * 1024]), topic, partition, offset, reason, clip(message),
                            int(time.time() * 1000), command_id)
        return Outcome(dead_letter=self.codec.encode_dead_letter(letter))
