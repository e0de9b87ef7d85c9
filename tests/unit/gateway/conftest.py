"""Fixtures of the gateway's unit tests: an in-process gateway with no Kafka broker behind it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aimass.gateway.server import Gateway
from aimass.settings import Settings


class RunningGateway:
    """A :class:`Gateway` served by an event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = Gateway(settings, port=0)
        self.port = asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(30)

    @property
    def store(self):  # type: ignore[no-untyped-def]
        assert self.gateway.client is not None
        return self.gateway.client.client.store

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.stop(0.2), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "digits" / "1"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not opened by the gateway")
    (folder / "model.json").write_text(json.dumps({
        "inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
        "outputs": [{"name": "label", "dtype": "int64", "shape": [-1]}],
    }))
    return tmp_path / "models"


@pytest.fixture
def gateway_factory(models_dir: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Start gateways with extra ``AIMASS_*`` settings; Kafka points at a port nobody listens on."""
    started: list[RunningGateway] = []

    def start(**env: str) -> RunningGateway:
        settings = Settings.load(env={
            "AIMASS_PATHS_MODELS_DIR": str(models_dir),
            "AIMASS_KAFKA_PORT": str(_dead_port()),
            "AIMASS_GATEWAY_KAFKA_TIMEOUT_MS": "800",
            "AIMASS_JOB_MAX_PAYLOAD_BYTES": "65536",
            **env,
        })
        running = RunningGateway(settings)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
