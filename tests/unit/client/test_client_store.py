"""ResultStore: bound, TTL, waiters, failures, listeners and subscriptions."""

from __future__ import annotations

import threading
import time

import pytest

from aimass.client import ResultStore, SubmitFailed
from aimass.contract.messages import InferenceResult, Status


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(rid: str | None, status: Status = Status.OK) -> InferenceResult:
    return InferenceResult(request_id=rid, model="m", status=status, completed_at_ms=1)


def test_put_then_get_returns_the_latest_result_for_an_id() -> None:
    store = ResultStore(10, 60)
    store.put(result("a", Status.INTERNAL_ERROR))
    store.put(result("a"))
    found = store.get("a")
    assert found is not None and found.status is Status.OK
    assert store.get("b") is None
    assert len(store) == 1


def test_result_without_request_id_is_not_kept() -> None:
    store = ResultStore(10, 60)
    assert store.put(result(None)) is False
    assert len(store) == 0


def test_oldest_results_are_dropped_beyond_the_bound() -> None:
    store = ResultStore(3, 60)
    for rid in "abcde":
        store.put(result(rid))
    assert [r.request_id for r in store.results()] == ["c", "d", "e"]
    assert store.get("a") is None and store.evicted == 2


def test_results_expire_after_the_ttl() -> None:
    clock = FakeClock()
    store = ResultStore(10, ttl_s=5, clock=clock)
    store.put(result("a"))
    clock.now += 3
    store.put(result("b"))
    clock.now += 2.5
    assert store.get("a") is None
    assert store.get("b") is not None
    assert len(store) == 1
    clock.now += 3
    assert store.results() == [] and len(store) == 0


def test_state_tells_pending_from_unknown_and_done() -> None:
    clock = FakeClock()
    store = ResultStore(10, ttl_s=5, clock=clock)
    store.expect("a")
    assert store.state("a") == "pending"
    assert store.state("zzz") == "unknown"
    store.put(result("a"))
    assert store.state("a") == "done"
    store.expect("b")
    clock.now += 6
    assert store.state("b") == "unknown"


def test_wait_wakes_when_the_result_arrives() -> None:
    store = ResultStore(10, 60)
    got: list[InferenceResult | None] = []
    waiter = threading.Thread(target=lambda: got.append(store.wait("a", timeout=10)))
    waiter.start()
    deadline = time.monotonic() + 5
    while store.waiting() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    store.put(result("a"))
    waiter.join(5)
    assert got and got[0] is not None and got[0].request_id == "a"
    assert time.monotonic() - started < 1
    assert store.waiting() == 0


def test_wait_times_out_with_none_and_leaves_no_waiter() -> None:
    store = ResultStore(10, 60)
    started = time.monotonic()
    assert store.wait("a", timeout=0.1) is None
    assert 0.09 <= time.monotonic() - started < 1
    assert store.waiting() == 0


def test_many_waiters_on_many_ids_each_get_their_own_result() -> None:
    store = ResultStore(1000, 60)
    got: dict[str, str | None] = {}

    def wait(rid: str) -> None:
        found = store.wait(rid, timeout=10)
        got[rid] = None if found is None else found.request_id

    threads = [threading.Thread(target=wait, args=(f"id{i}",)) for i in range(50)]
    for t in threads:
        t.start()
    for i in range(50):
        store.put(result(f"id{i}"))
    for t in threads:
        t.join(10)
    assert got == {f"id{i}": f"id{i}" for i in range(50)}


def test_a_failure_wakes_waiters_and_is_raised() -> None:
    store = ResultStore(10, 60)
    error = SubmitFailed("a", RuntimeError("broker gone"))
    seen: list[tuple[str, Exception]] = []
    store.add_failure_listener(lambda rid, exc: seen.append((rid, exc)))
    threading.Timer(0.05, store.fail, args=("a", error)).start()
    with pytest.raises(SubmitFailed, match="not delivered"):
        store.wait("a", timeout=5)
    with pytest.raises(SubmitFailed):
        store.get("a")
    assert seen == [("a", error)]


def test_listeners_and_subscriptions_see_results_put_after_they_joined() -> None:
    store = ResultStore(10, 60)
    store.put(result("before"))
    heard: list[str | None] = []
    store.add_listener(lambda r: heard.append(r.request_id))
    with store.subscribe(maxsize=2) as sub:
        for rid in ("x", "y", "z"):
            store.put(result(rid))
        first, second = sub.get(timeout=1), sub.get(timeout=1)
        assert first is not None and second is not None
        assert [first.request_id, second.request_id] == ["x", "y"]
        assert sub.get(timeout=0.01) is None and sub.dropped == 1
    store.put(result("after-close"))
    assert heard == ["x", "y", "z", "after-close"]


def test_a_failing_listener_does_not_stop_the_others() -> None:
    store = ResultStore(10, 60)
    heard: list[str | None] = []

    def broken(_: InferenceResult) -> None:
        raise RuntimeError("boom")

    store.add_listener(broken)
    store.add_listener(lambda r: heard.append(r.request_id))
    store.put(result("a"))
    assert heard == ["a"]
    assert store.get("a") is not None


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        ResultStore(0, 60)
    with pytest.raises(ValueError):
        ResultStore(10, 0)


def test_the_store_is_bounded_by_bytes_as_well_as_by_count() -> None:
    import numpy as np

    from aimass.client.store import entry_bytes
    from aimass.contract.messages import Tensor

    def big(rid: str) -> InferenceResult:
        return InferenceResult(request_id=rid, model="m", status=Status.OK, completed_at_ms=1,
                               outputs=(Tensor.from_numpy("o", np.zeros(256 * 1024, np.uint8)),))

    one = entry_bytes("r0", big("r0"))
    assert 256 * 1024 < one < 256 * 1024 + 2048
    store = ResultStore(max_size=100_000, ttl_s=60, max_bytes=4 * one)
    for n in range(10):
        store.put(big(f"r{n}"))
    assert len(store) == 4 and store.bytes <= 4 * one
    assert store.get("r5") is None and store.get("r9") is not None and store.evicted == 6
    store.put(big("r9"))  # a replacement counts once
    assert len(store) == 4 and store.bytes == 4 * one


def test_async_streams_get_only_the_results_of_their_ids() -> None:
    import asyncio

    from aimass.client.aio import AsyncClient

    class Holder:
        def __init__(self) -> None:
            self.store = ResultStore(1000, 60)

    async def run() -> tuple[list[str], int]:
        client = AsyncClient(client=Holder())  # type: ignore[arg-type]
        await client.start()
        got: list[str] = []

        async def follow() -> None:
            async for res in client.results(["want-1", "want-2"], maxsize=4):
                got.append(res.request_id or "")

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.05)
        for n in range(100):  # 100 others: a stream of two ids is not handed them (its queue holds 4)
            client.client.store.put(result(f"other-{n}"))
        client.client.store.put(result("want-2"))
        client.client.store.put(result("want-1"))
        await asyncio.wait_for(task, 5)
        indexed = len(client._by_id)
        client.client.store.remove_listener(client._on_result)
        return got, indexed

    got, indexed = asyncio.run(run())
    assert got == ["want-2", "want-1"] and indexed == 0
