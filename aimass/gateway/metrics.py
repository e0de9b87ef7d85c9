"""The gateway's own metrics (``prometheus_client``), served on ``gateway.metrics_port``:

* ``aimass_gateway_calls_total{method, code}``: calls answered, by gRPC method and status code
  (refused ones too: :class:`aimass.gateway.guard.Gatekeeper` records them);
* ``aimass_gateway_call_seconds{method}``: how long each took (a histogram; a streaming call
  until its stream ended);
* ``aimass_gateway_store_results``: results kept for ``GetResult``;
* ``aimass_gateway_results_replayed``: 1 once the results topic has been replayed (SERVING);
* ``aimass_gateway_results_lag`` and ``aimass_gateway_results_read``: the results feed's consumer
  lag and what it has read;
* ``aimass_gateway_calls_in_progress{budget}`` and ``aimass_gateway_calls_refused{budget}``: the
  gatekeeper's budgets (``api``, ``health check``, ``health watch``): calls held, and refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class GatewayMetrics:
    """The gateway's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("aimass_gateway_calls", "gRPC calls answered, by method and status code",
                             ["method", "code"], registry=self.registry)
        self.seconds = Histogram("aimass_gateway_call_seconds", "gRPC call duration", ["method"],
                                 buckets=_BUCKETS, registry=self.registry)
        self.store = Gauge("aimass_gateway_store_results", "results kept for GetResult", registry=self.registry)
        self.replayed = Gauge("aimass_gateway_results_replayed", "1 once the results topic is replayed",
                              registry=self.registry)
        self.lag = Gauge("aimass_gateway_results_lag", "results on the topic not read yet (measured every 5 s)",
                         registry=self.registry)
        self.read = Gauge("aimass_gateway_results_read", "results read from the topic since the start",
                          registry=self.registry)
        self.in_progress = Gauge("aimass_gateway_calls_in_progress", "calls in progress, by budget", ["budget"],
                                 registry=self.registry)
        self.refused = Gauge("aimass_gateway_calls_refused", "calls refused by a spent budget since the start",
                             ["budget"], registry=self.registry)
        self._server: Any = None

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (0: any free port); returns the bound port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def watch_budgets(self, budgets: Any) -> None:
        """Export the in-progress and refused counts of ``budgets`` (:class:`aimass.gateway.guard.Budget`)."""
        for budget in budgets:
            self.in_progress.labels(budget.name).set_function(_reader(budget, "in_progress"))
            self.refused.labels(budget.name).set_function(_reader(budget, "refused"))

    def record(self, method: str, code: str, seconds: float) -> None:
        self.calls.labels(method, code).inc()
        self.seconds.labels(method).observe(seconds)


def _reader(owner: Any, attribute: str) -> Callable[[], float]:
    return lambda: float(getattr(owner, attribute))
