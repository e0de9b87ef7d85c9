"""BatchInfer's de-duplication, driven directly with stand-in keyed state (no MiniCluster).

In a MiniCluster run the order of records within a key is not fixed in BATCH mode, so what
"a record arriving after the id was accepted" gets is checked here, where the order is ours:
one result per id, whatever comes after it under the same id, and a dead letter for every
record that is bad.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from aimass.codec import Codec
from aimass.messages import DeadLetter, InferenceRequest, InferenceResult, Reason, Status, Tensor
from aimass.settings import Settings

pytestmark = pytest.mark.pipeline


class _Value:
    def __init__(self) -> None:
        self.v: Any = None

    def value(self) -> Any:
        return self.v

    def update(self, v: Any) -> None:
        self.v = v

    def clear(self) -> None:
        self.v = None


class _List:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def get(self) -> list[Any]:
        return list(self.items)

    def add(self, v: Any) -> None:
        self.items.append(v)

    def clear(self) -> None:
        self.items = []


class _Map(dict[str, Any]):
    def contains(self, k: str) -> bool:
        return k in self

    def put(self, k: str, v: Any) -> None:
        self[k] = v


class _Keyed:
    """A runtime context whose states live per current key, like Flink's keyed state."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.states: dict[tuple[str | None, str], Any] = {}

    def _state(self, name: str, kind: type) -> Any:
        outer = self

        class Proxy:
            def __getattr__(self, attr: str) -> Any:
                return getattr(outer.states.setdefault((outer.key, name), kind()), attr)

        return Proxy()

    def get_list_state(self, d: Any) -> Any:
        return self._state(d.name, _List)

    def get_state(self, d: Any) -> Any:
        return self._state(d.name, _Value)

    def get_map_state(self, d: Any) -> Any:
        return self._state(d.name, _Map)


class _Timers:
    def current_processing_time(self) -> int:
        return int(time.time() * 1000)

    def register_processing_time_timer(self, at: int) -> None:
        pass

    def delete_processing_time_timer(self, at: int) -> None:
        pass


class _Ctx:
    def timer_service(self) -> _Timers:
        return _Timers()


class _Operators:
    """DecodeRequests then BatchInfer, the way the job chains them (key_by in between)."""

    def __init__(self) -> None:
        from udfs.batch_infer import BatchInfer
        from udfs.decode import DecodeRequests

        settings = Settings.load(env={}, overrides={"job.use_gpu": "false"})
        from aimass.demo import build_demo_models

        build_demo_models(settings.paths.models_dir)
        self.codec = Codec(settings.paths.schemas_dir)
        self.decode = DecodeRequests(settings)
        self.decode.open(None)  # type: ignore[arg-type]
        self.keyed = _Keyed()
        self.infer = BatchInfer(settings)
        self.infer.open(self.keyed)  # type: ignore[arg-type]
        self.offset = 0

    def send(self, value: bytes) -> list[InferenceResult | DeadLetter]:
        from pyflink.common import Row

        self.offset += 1
        out: list[Any] = []
        for item in self.decode.process_element(Row(value, "requests", 0, self.offset), _Ctx()):  # type: ignore[arg-type]
            if isinstance(item, tuple) and len(item) == 6:  # routed: on to the keyed operator
                self.keyed.key = item[0]
                out += self.infer.process_element(item, _Ctx())  # type: ignore[arg-type]
                out += self.infer._flush(_Ctx())  # type: ignore[arg-type]  # a batch of this one request
            else:
                out.append(item)
        return [self._decoded(item) for item in out]

    def _decoded(self, item: Any) -> InferenceResult | DeadLetter:
        from udfs.decode import DEAD_LETTERS

        if isinstance(item, tuple):  # a side output: (tag, row)
            tag, row = item
            if tag is DEAD_LETTERS:
                return self.codec.decode_dead_letter(bytes(row[0]))
            return self.codec.decode_result(bytes(row[1]))
        return self.codec.decode_result(bytes(item[1]))


@pytest.fixture(scope="module")
def operators() -> _Operators:
    return _Operators()


def _digits(rid: str, cols: int = 64, **fields: Any) -> InferenceRequest:
    pixels = np.zeros((1, cols), dtype=np.float32)
    return InferenceRequest(rid, "digits", (Tensor.from_numpy("pixels", pixels),), int(time.time() * 1000),
                            **fields)


def test_records_under_an_accepted_id_get_a_dead_letter_if_bad_and_never_a_second_result(
    operators: _Operators,
) -> None:
    codec = operators.codec
    first = operators.send(codec.encode_request(_digits("dup-1", deadline_ms=int(time.time() * 1000) + 60_000)))
    assert [(type(o).__name__, getattr(o, "status", None)) for o in first] == [("InferenceResult", Status.OK)]

    # The same bytes again: a resubmission, silently de-duplicated.
    assert operators.send(codec.encode_request(_digits("dup-1"))) == []
    # The same id, now invalid (wrong shape), expired, or cut short: a dead letter, no result.
    for value, reason in (
        (codec.encode_request(_digits("dup-1", cols=63)), Reason.INVALID_INPUT),
        (codec.encode_request(_digits("dup-1", deadline_ms=1)), Reason.DEADLINE_EXCEEDED),
        (codec.encode_request(_digits("dup-1"))[:-9], Reason.UNDECODABLE),
    ):
        out = operators.send(value)
        assert len(out) == 1 and isinstance(out[0], DeadLetter), out
        assert (out[0].reason, out[0].request_id, out[0].original) == (reason, "dup-1", value)


def test_a_bad_record_under_a_new_id_gets_its_error_result_and_dead_letter(operators: _Operators) -> None:
    out = operators.send(operators.codec.encode_request(_digits("new-1", cols=63)))
    kinds = sorted(type(o).__name__ for o in out)
    assert kinds == ["DeadLetter", "InferenceResult"]
    result = next(o for o in out if isinstance(o, InferenceResult))
    assert (result.request_id, result.status) == ("new-1", Status.INVALID_INPUT)
    # The id was never accepted: a valid request under it later is served.
    (served,) = operators.send(operators.codec.encode_request(_digits("new-1")))
    assert isinstance(served, InferenceResult) and served.status is Status.OK
