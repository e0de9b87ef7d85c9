"""The committed stubs are what `make proto` generates from proto/ today."""

from __future__ import annotations

from pathlib import Path

from aimass.gateway import protogen


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    written = protogen.generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(protogen.GENERATED)
    stale = [p.name for p in written if p.read_bytes() != (protogen.GEN_DIR / p.name).read_bytes()]
    assert not stale, f"{stale} differ from proto/{protogen.PROTO_FILE}: run `make proto` and commit the result"


def test_stubs_import_from_this_package_not_from_aimass_v1(tmp_path: Path) -> None:
    grpc_stub = next(p for p in protogen.generate(tmp_path) if p.name == "inference_pb2_grpc.py")
    text = grpc_stub.read_text()
    assert "from aimass.gateway._gen import inference_pb2" in text
    assert "from aimass.v1 import" not in text
