"""Callers kept apart: each token of ``gateway.tokens_file`` is a tenant whose ids live under
``<tenant>/``; it reads only those, never lists others', and only an admin streams every result
or changes routing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from aimass.contract.messages import InferenceResult, Status, Tensor, Timings
from aimass.gateway._gen import inference_pb2 as pb
from aimass.gateway._gen import inference_pb2_grpc as pb_grpc
from aimass.gateway.auth import Identity, TokenTable
from aimass.settings import GatewaySettings, SettingsError
from tests.unit.gateway.test_gateway_server import code_of, stub

Factory = Callable[..., Any]
ACME, GLOBEX, ROOT = "acme-token-0123456789", "globex-token-0123456789", "root-token-0123456789abc"


def _as(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _result(rid: str) -> InferenceResult:
    return InferenceResult(request_id=rid, model="digits", status=Status.OK, completed_at_ms=123, version="1",
                           outputs=(Tensor.from_numpy("label", np.array([3], np.int64)),), timings=Timings())


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# tenant token [admin]\nacme {ACME}\nglobex {GLOBEX}\n\nops {ROOT} admin\n")
    path.chmod(0o600)
    return path


def test_a_tenant_reads_only_its_own_results(gateway_factory: Factory, tokens_file: Path) -> None:
    gw = gateway_factory(AIMASS_GATEWAY_TOKENS_FILE=str(tokens_file))
    gw.store.put(_result("acme/a1"))
    gw.store.put(_result("globex/g1"))
    gw.store.expect("globex/pending")
    client = stub(gw)
    ask = lambda rid, token: client.GetResult(pb.GetResultRequest(request_id=rid), metadata=_as(token), timeout=5)  # noqa: E731
    assert ask("a1", ACME).request_id == "acme/a1"  # its own, with or without the prefix
    assert ask("acme/a1", ACME).request_id == "acme/a1"
    for other in ("globex/g1", "../globex/g1", "g1"):
        code, details = code_of(lambda rid=other: ask(rid, ACME))
        assert code == grpc.StatusCode.NOT_FOUND and "never seen" in details
    # Another tenant's pending id reads as unknown, not pending: nothing tells it exists.
    code, details = code_of(lambda: ask("globex/pending", ACME))
    assert code == grpc.StatusCode.NOT_FOUND and "is pending" not in details and "never seen" in details
    assert ask("globex/g1", ROOT).request_id == "globex/g1"  # an admin reads any


def test_streams_are_per_tenant_and_every_result_is_for_admins(gateway_factory: Factory, tokens_file: Path) -> None:
    gw = gateway_factory(AIMASS_GATEWAY_TOKENS_FILE=str(tokens_file))
    gw.store.put(_result("acme/a1"))
    gw.store.put(_result("globex/g1"))
    client = stub(gw)
    got = list(client.StreamResults(pb.StreamResultsRequest(request_ids=["a1"]), metadata=_as(ACME), timeout=5))
    assert [r.request_id for r in got] == ["acme/a1"]
    # Listing another tenant's id follows acme/globex/g1, which never comes.
    code, _ = code_of(lambda: list(client.StreamResults(
        pb.StreamResultsRequest(request_ids=["globex/g1"]), metadata=_as(ACME), timeout=1)))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    for request in (pb.StreamResultsRequest(), pb.StreamResultsRequest(include_stored=True)):
        code, details = code_of(lambda r=request: list(client.StreamResults(r, metadata=_as(ACME), timeout=5)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "admin" in details
    stream = client.StreamResults(pb.StreamResultsRequest(include_stored=True), metadata=_as(ROOT), timeout=5)
    assert {next(stream).request_id, next(stream).request_id} == {"acme/a1", "globex/g1"}
    stream.cancel()


def test_the_control_service_is_for_admins_only(gateway_factory: Factory, tokens_file: Path) -> None:
    gw = gateway_factory(AIMASS_GATEWAY_TOKENS_FILE=str(tokens_file))
    control = pb_grpc.ControlStub(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))
    code, details = code_of(lambda: control.Routes(pb.RoutesRequest(), metadata=_as(ACME), timeout=5))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "admin" in details
    code, _ = code_of(lambda: control.Routes(pb.RoutesRequest(), metadata=_as(ROOT), timeout=10))
    assert code != grpc.StatusCode.PERMISSION_DENIED  # past the check (no Kafka here: UNAVAILABLE)


def test_a_tenant_submission_is_named_in_its_namespace() -> None:
    acme = Identity("acme", admin=False)
    assert acme.own("x") == "acme/x" and acme.own("acme/x") == "acme/x" and acme.own("globex/x") == "acme/globex/x"
    assert Identity("ops", admin=True).own("globex/x") == "globex/x"


def test_token_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens"

    def load(text: str, mode: int = 0o600) -> TokenTable:
        path.write_text(text)
        os.chmod(path, mode)
        return TokenTable.from_settings(GatewaySettings(tokens_file=path))

    assert len(load(f"acme {ACME}\nops {ROOT} admin\n")) == 2
    assert len(load(f"acme {ACME}\n", 0o640)) == 1  # a group's (Kubernetes secrets with fsGroup are 0440)
    assert load(f"acme {ACME}\n").identify(f"Bearer {ACME}") == Identity("acme", admin=False)
    assert load(f"acme {ACME}\n").identify("Bearer nope") is None
    for text, says in [
        (f"acme {ACME}\n", "chmod 600"),
        (f"acme {ACME} root\n", "expected"),
        ("acme short\n", "at least 16"),
        (f"a/b {ACME}\n", "no '/'"),
        (f"acme {ACME}\nglobex {ACME}\n", "share a token"),
        (f"acme {ACME}\nacme {GLOBEX}\n", "distinct names"),
    ]:
        with pytest.raises(SettingsError, match=says) as caught:
            load(text, 0o604 if says == "chmod 600" else 0o600)
        assert ACME not in str(caught.value) and GLOBEX not in str(caught.value)  # never echoes a token
    single = tmp_path / "token"
    single.write_text(f"{ROOT}\n")
    single.chmod(0o600)
    table = TokenTable.from_settings(GatewaySettings(token_file=single))
    assert table.identify(f"Bearer {ROOT}") == Identity("default", admin=True)
