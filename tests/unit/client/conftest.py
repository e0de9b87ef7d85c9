"""Fixtures of the client's unit tests: a model repository on disk and settings with no broker."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from aimass.settings import Settings


def write_model(root: Path, name: str = "digits", version: str = "1") -> Path:
    """A model version the repository lists (the ONNX file is never opened by the client)."""
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not opened by the client")
    meta = {
        "inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
        "outputs": [{"name": "label", "dtype": "int64", "shape": [-1]}],
    }
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_model(root)
    return root


@pytest.fixture
def offline_settings(models_dir: Path) -> Settings:
    """Settings whose Kafka address has no broker behind it."""
    return Settings.load(env={
        "AIMASS_PATHS_MODELS_DIR": str(models_dir),
        "AIMASS_KAFKA_PORT": str(dead_port()),
        "AIMASS_GATEWAY_KAFKA_TIMEOUT_MS": "800",
        "AIMASS_JOB_MAX_PAYLOAD_BYTES": "65536",
    })
