"""Client-side figures of "submit now, read later": submits/s and submit-to-result latency
through the client library and through the gRPC gateway, beside a bare kafka-python
producer/consumer pair, in one run against one running stack and job.

    AIMASS_KAFKA_PORT=... aimass up && aimass submit     # or any running stack
    .venv/bin/python bench/client_bench.py --count 3000 --rate 100 --seconds 10

Two phases per path, one-row requests to the demo ``digits`` model:

* throughput: ``--count`` requests as fast as the path takes them (encode included); the
  submit rate, then the time until every result was read.
* latency: ``--rate`` requests/s for ``--seconds``; submit-to-result time per request as seen
  by the submitting process (p50/p99). With exactly-once delivery a result becomes readable
  at the checkpoint after it was produced, so latency is dominated by the checkpoint interval.

The gateway runs as its own process (``aimass gateway``); this process is the client of all
three paths. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aimass.client import Client
from aimass.contract.codec import Codec
from aimass.gateway._gen import inference_pb2 as pb
from aimass.gateway._gen import inference_pb2_grpc as pb_grpc
from aimass.settings import Settings
from aimass.tools.traffic import consumer as results_consumer
from aimass.tools.traffic import make_request, producer

Submit = Callable[[np.ndarray], str]


@dataclass
class Figures:
    path: str
    submits_per_s: float = 0.0
    all_results_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    received: int = 0
    sent: int = 0


class Arrivals:
    """Request id -> monotonic time its result was first seen by this process."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()

    def note(self, rid: str | None) -> None:
        if rid is None:
            return
        now = time.monotonic()
        with self.lock:
            self.times.setdefault(rid, now)

    def wait_all(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(rid in self.times for rid in ids):
                    return True
            time.sleep(0.01)
        return False


def rows(n: int) -> np.ndarray:
    return np.random.default_rng(0).random((n, 64), dtype=np.float32)


def drive(send: Submit, data: np.ndarray, rate: float | None, workers: int) -> tuple[list[tuple[str, float]], float]:
    """Send each row of ``data`` (at ``rate`` per second, or as fast as taken) from ``workers``
    threads; returns (request id, monotonic send time) pairs and the elapsed seconds."""

    def timed(x: np.ndarray) -> tuple[str, float]:
        t0 = time.monotonic()
        return send(x), t0

    started = time.monotonic()
    if workers == 1 and rate is None:
        sent = [timed(data[i : i + 1]) for i in range(len(data))]
        return sent, time.monotonic() - started
    with ThreadPoolExecutor(workers) as pool:
        futures = []
        for i in range(len(data)):
            if rate is not None:
                pause = started + i / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            futures.append(pool.submit(timed, data[i : i + 1]))
        sent = [f.result() for f in futures]
    return sent, time.monotonic() - started


def phases(name: str, send: Submit, flush: Callable[[], None], arrivals: Arrivals, workers: int,
           args: argparse.Namespace) -> Figures:
    """The throughput phase, then the latency phase, of one path."""
    sent, elapsed = drive(send, rows(args.count), None, workers)
    flush()
    submitted = time.monotonic()
    ids = [rid for rid, _ in sent]
    complete = arrivals.wait_all(ids, args.timeout)
    figures = Figures(name, len(sent) / elapsed,
                      elapsed + time.monotonic() - submitted if complete else float("nan"))
    paced, _ = drive(send, rows(int(args.rate * args.seconds)), args.rate, max(workers, 4))
    flush()
    arrivals.wait_all([rid for rid, _ in paced], args.timeout)
    with arrivals.lock:
        lat = [(arrivals.times[rid] - t0) * 1000 for rid, t0 in paced if rid in arrivals.times]
        figures.received = sum(rid in arrivals.times for rid in ids) + len(lat)
    figures.sent = len(sent) + len(paced)
    if lat:
        figures.p50_ms, figures.p99_ms = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    return figures


# -- the three paths ---------------------------------------------------------------------------


def bare_path(settings: Settings) -> tuple[Submit, Callable[[], None], Arrivals, Callable[[], None]]:
    """kafka-python producer + read_committed consumer, encoding with the codec."""
    codec = Codec(settings.paths.schemas_dir)
    k = settings.kafka
    prod = producer(k)
    cons = results_consumer(k, k.results_topic, from_beginning=False)
    arrivals = Arrivals()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for records in cons.poll(timeout_ms=100, max_records=10_000).values():
                for record in records:
                    arrivals.note(record.key.decode() if record.key else None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def submit(x: np.ndarray) -> str:
        request = make_request("digits", {"pixels": x})
        prod.send(k.requests_topic, value=codec.encode_request(request), key=request.request_id.encode())
        return request.request_id

    def close() -> None:
        stop.set()
        reader.join(5)
        cons.close()
        prod.close()

    return submit, prod.flush, arrivals, close


def library_path(settings: Settings) -> tuple[Submit, Callable[[], None], Arrivals, Callable[[], None]]:
    client = Client(settings)
    assert client.feed is not None and client.feed.wait_ready(30), "result feed not ready"
    arrivals = Arrivals()
    client.store.add_listener(lambda r: arrivals.note(r.request_id))

    def submit(x: np.ndarray) -> str:
        return client.submit("digits", {"pixels": x})

    return submit, client.flush, arrivals, client.close


def gateway_path(settings: Settings, port: int) -> tuple[Submit, Callable[[], None], Arrivals, Callable[[], None]]:
    """Submit through the gateway (each call returns once Kafka holds the request); results
    through one StreamResults call."""
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.InferenceStub(channel)
    arrivals = Arrivals()
    stream = stub.StreamResults(pb.StreamResultsRequest())

    def read() -> None:
        try:
            for result in stream:
                arrivals.note(result.request_id)
        except grpc.RpcError:
            pass  # cancelled at the end

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # let the stream register before the first submit

    def submit(x: np.ndarray) -> str:
        tensor = pb.Tensor(name="pixels", dtype="float32", shape=list(x.shape), data=x.tobytes())
        return str(stub.Submit(pb.SubmitRequest(model="digits", inputs=[tensor]), timeout=30).request_id)

    def close() -> None:
        stream.cancel()
        channel.close()

    return submit, lambda: None, arrivals, close


def start_gateway(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    env = {**os.environ, **settings.as_env(), "AIMASS_GATEWAY_PORT": str(port)}
    aimass = Path(sys.executable).parent / "aimass"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(aimass), "gateway"], env=env, stdout=out, stderr=subprocess.STDOUT)
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited; see {log}")
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return proc
        except grpc.RpcError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"gateway not serving within 120 s; see {log}")


def main() -> int:
    parser = argparse.ArgumentParser(description="client, gateway and bare Kafka figures (see the module doc)")
    parser.add_argument("--count", type=int, default=3000, help="requests in the throughput phase of each path")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    parser.add_argument("--in-flight", type=int, default=32, help="gateway Submits in flight")
    parser.add_argument("--timeout", type=float, default=120.0, help="longest wait for the results of a phase")
    parser.add_argument("--log", type=Path, help="gateway log file (default: in the state folder)")
    args = parser.parse_args()

    from aimass.gateway.server import free_port

    settings = Settings.load()
    port = free_port()
    log = args.log or settings.paths.state_dir / "logs" / "client-bench-gateway.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    gateway = start_gateway(settings, port, log)
    rows_out: list[Figures] = []
    try:
        makers: list[tuple[str, int, Callable[[], Any]]] = [
            ("bare kafka-python", 1, lambda: bare_path(settings)),
            ("client library", 1, lambda: library_path(settings)),
            (f"gRPC gateway ({args.in_flight} in flight)", args.in_flight, lambda: gateway_path(settings, port)),
        ]
        for name, workers, make in makers:
            submit, flush, arrivals, close = make()
            try:
                submit(rows(1))  # warm-up: connections, metadata
                flush()
                rows_out.append(phases(name, submit, flush, arrivals, workers, args))
                print(f"... {name}: done", file=sys.stderr, flush=True)
            finally:
                close()
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(20)

    print(f"\nAI Mass client bench: Kafka {settings.kafka.bootstrap}, delivery {settings.job.delivery}, "
          f"checkpoint {settings.job.checkpoint_interval_ms} ms, {os.cpu_count()} cores; one-row digits requests")
    print(f"throughput phase: {args.count} requests per path as fast as taken; "
          f"latency phase: {args.rate:g} requests/s for {args.seconds:g} s\n")
    print(f"{'path':<30}{'submits/s':>11}{'all results (s)':>17}{'p50 ms':>9}{'p99 ms':>9}{'results':>13}")
    for f in rows_out:
        print(f"{f.path:<30}{f.submits_per_s:>11,.0f}{f.all_results_s:>17.2f}{f.p50_ms:>9.0f}{f.p99_ms:>9.0f}"
              f"{f'{f.received}/{f.sent}':>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
