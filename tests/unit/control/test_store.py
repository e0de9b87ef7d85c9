"""A TaskManager's model store, and the batch step serving routed versions, shadows and route updates."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.contract.frames import CONTROL, PINNED, SHADOW, SPLIT, UNKNOWN, BatchRecord, read_outputs, write_batch
from aimass.contract.messages import InferenceRequest, Status, Tensor
from aimass.control.blobs import CHUNK_BYTES, BlobError, Location, fetch, sha256_of
from aimass.control.commands import Command, Deploy
from aimass.control.routing import Routing
from aimass.control.store import ModelStore
from aimass.serving.batches import BatchServer
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import MODEL_FILE, ModelError
from aimass.serving.sessions import SessionCache
from aimass.settings import Settings
from aimass.tools.demo import build_demo_models

SETTINGS = Settings.load(env={}, overrides={"engine.use_gpu": "false"})


@pytest.fixture(scope="module")
def digits() -> Path:
    build_demo_models(SETTINGS.paths.models_dir)
    return SETTINGS.paths.models_dir / "digits"


def update_for(*dirs: Path, sha: str | None = None, uri: str | None = None) -> dict[str, Any]:
    routing, update = Routing(), {}
    for d in dirs:
        digest, size = sha256_of(d / MODEL_FILE)
        meta = (d / "model.json").read_text()
        update = routing.apply(Command(Deploy(d.parent.name, d.name, uri or d.as_uri(), sha or digest, size, meta), 1))
        assert isinstance(update, dict), update
    return update


def store(tmp_path: Path, consumer: Any = None) -> ModelStore:
    return ModelStore(tmp_path / "cache", SessionCache(SETTINGS.engine), consumer, load_timeout_s=30)


def test_a_file_version_loads_in_the_background_and_resolves(digits: Path, tmp_path: Path) -> None:
    s = store(tmp_path)
    s.apply(update_for(digits / "1", digits / "2"))
    assert s.resolve("digits", "1").version == "1"
    assert s.resolve("digits", "2").path == (digits / "2").resolve()
    assert s.versions("digits") == ["1", "2"]


def test_a_version_that_does_not_load_is_a_typed_error_naming_it_never_another(digits: Path, tmp_path: Path) -> None:
    s = store(tmp_path)
    s.apply(update_for(digits / "1", sha="00" * 32))
    with pytest.raises(ModelError) as info:
        s.resolve("digits", "1")
    assert "model 'digits' version '1' could not be loaded on this TaskManager" in info.value.message
    assert "changed since it was deployed" in info.value.message
    with pytest.raises(ModelError) as info:
        s.resolve("digits", "7")
    assert "has not reached this TaskManager" in info.value.message


def test_a_version_a_request_waits_for_jumps_the_queue_of_loads(digits: Path, tmp_path: Path) -> None:
    # After a restart every deployed version is loaded again, one after the other: a request for
    # one still queued behind slow loads must not wait for all of them (and time out).
    import threading

    s = ModelStore(tmp_path / "cache", SessionCache(SETTINGS.engine), None, load_timeout_s=2)
    blocked = threading.Event()
    s._loader.submit(blocked.wait, 30)  # a load queued first that takes long (a big model)
    try:
        s.apply(update_for(digits / "1"))
        started = time.monotonic()
        assert s.resolve("digits", "1").version == "1"
        assert time.monotonic() - started < 2
        assert s.versions("digits") == ["1"]
    finally:
        blocked.set()
        s.close()


class FakeConsumer:
    """Stands in for a KafkaConsumer on a topic holding ``chunks`` from offset ``first``."""

    def __init__(self, chunks: list[tuple[bytes, bytes]], first: int) -> None:
        self.records = [SimpleNamespace(offset=first + i, key=k, value=v) for i, (k, v) in enumerate(chunks)]
        self.pos = 0
        self.tp: Any = None

    def assign(self, tps: list[Any]) -> None:
        self.tp = tps[0]

    def seek(self, tp: Any, offset: int) -> None:
        self.pos = offset - self.records[0].offset

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        batch = self.records[self.pos : self.pos + 3]
        self.pos += len(batch)
        return {self.tp: batch}

    def close(self) -> None:
        pass


def chunks_of(path: Path, sha: str) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    pieces = [data[i : i + CHUNK_BYTES // 64] for i in range(0, len(data), CHUNK_BYTES // 64)]
    return [(f"{sha}/{i}".encode(), p) for i, p in enumerate(pieces)]


def test_kafka_chunks_are_fetched_checked_and_cached(digits: Path, tmp_path: Path) -> None:
    sha, _ = sha256_of(digits / "1" / MODEL_FILE)
    chunks = chunks_of(digits / "1" / MODEL_FILE, sha)
    uri = Location("blobs", 0, 10, 10 + len(chunks) - 1).uri
    s = store(tmp_path, lambda: FakeConsumer([(b"other/0", b"x")] * 3 + chunks, 7))
    s.apply(update_for(digits / "1", uri=uri))
    spec = s.resolve("digits", "1")
    assert spec.onnx_path.read_bytes() == (digits / "1" / MODEL_FILE).read_bytes()
    assert str(spec.path).startswith(str(tmp_path / "cache"))


def test_a_corrupt_or_misplaced_chunk_range_is_refused(digits: Path, tmp_path: Path) -> None:
    sha, _ = sha256_of(digits / "1" / MODEL_FILE)
    chunks = chunks_of(digits / "1" / MODEL_FILE, sha)
    bad = chunks[:1] + [(chunks[1][0], b"\x00" * len(chunks[1][1]))] + chunks[2:]
    uri = Location("blobs", 0, 0, len(chunks) - 1).uri
    with pytest.raises(BlobError, match="the deploy says"):
        fetch(lambda: FakeConsumer(bad, 0), uri, sha, tmp_path / "a" / MODEL_FILE)
    with pytest.raises(BlobError, match="is not chunk"):
        fetch(lambda: FakeConsumer([(b"zz/0", b"")] + chunks, 0), uri, sha, tmp_path / "b" / MODEL_FILE)
    assert not (tmp_path / "a" / MODEL_FILE).exists() and not list((tmp_path / "a").iterdir())


def _request(rid: str) -> bytes:
    pixels = Tensor.from_numpy("pixels", np.random.default_rng(len(rid)).random((1, 64), np.float32))
    return Codec().encode_request(InferenceRequest(rid, "digits", (pixels,), int(time.time() * 1000)))


def batch_server(s: ModelStore) -> BatchServer:
    return BatchServer(Codec(), InferenceEngine(s, SessionCache(SETTINGS.engine), SETTINGS.job), SETTINGS.job, store=s)


def test_the_batch_step_serves_the_routed_version_its_shadow_and_route_updates(digits: Path, tmp_path: Path) -> None:
    s = store(tmp_path)
    server = batch_server(s)
    update = json.dumps(update_for(digits / "1", digits / "2")).encode()
    now = int(time.time() * 1000)
    frame = write_batch([
        BatchRecord(update, "", 0, -1, now, CONTROL),
        BatchRecord(_request("a"), "requests", 0, 1, now, PINNED, -1, "1"),
        BatchRecord(_request("b"), "requests", 0, 2, now, SPLIT, 1234, "2", "", "1"),
        BatchRecord(_request("c"), "requests", 0, 3, now, UNKNOWN, -1, "", "", "", "model 'digits' has no version 'x'"),
    ])
    outputs = read_outputs(server.serve(frame))
    codec = Codec()
    by_kind = [(kind, key, codec.decode_result(v)) for kind, key, v in outputs if kind != 2]
    a, b, shadow, c = (r for _, _, r in by_kind)
    assert (a.version, a.route.rule) == ("1", "pinned")  # type: ignore[union-attr]
    assert (b.version, b.route.rule, b.route.bucket) == ("2", "split", 1234)  # type: ignore[union-attr]
    assert by_kind[2][0] == SHADOW and shadow.version == "1" and shadow.route.rule == "shadow"  # type: ignore[union-attr]
    assert shadow.route.primary_version == "2"  # type: ignore[union-attr]
    agree = bool(np.array_equal(shadow.output("label"), b.output("label")))
    assert shadow.route.agrees is (agree and np.allclose(shadow.output("probabilities"), b.output("probabilities"),  # type: ignore[union-attr]
                                                         rtol=1e-3, atol=1e-5))
    assert (c.status, c.error) == (Status.UNKNOWN_MODEL, "UNKNOWN_MODEL: model 'digits' has no version 'x'")
    assert server.shadow_stats.counts[("digits", "agree" if shadow.route.agrees else "disagree")] == 1  # type: ignore[union-attr]


def test_a_copy_of_a_version_agrees_with_itself(digits: Path, tmp_path: Path) -> None:
    twin = tmp_path / "models" / "digits" / "3"
    shutil.copytree(digits / "1", twin)
    meta = json.loads((twin / "model.json").read_text())
    meta["version"] = "3"
    (twin / "model.json").write_text(json.dumps(meta))
    s = store(tmp_path)
    server = batch_server(s)
    now = int(time.time() * 1000)
    frame = write_batch([BatchRecord(json.dumps(update_for(digits / "1", twin)).encode(), "", 0, -1, now, CONTROL)]
                        + [BatchRecord(_request(f"r{i}"), "t", 0, i, now, PINNED, -1, "1", "", "3") for i in range(5)])
    shadows = [Codec().decode_result(v) for kind, _, v in read_outputs(server.serve(frame)) if kind == SHADOW]
    assert len(shadows) == 5 and all(r.route.agrees for r in shadows)  # type: ignore[union-attr]
