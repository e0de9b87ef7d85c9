"""Generate the gateway's gRPC stubs from ``proto/aimass/v1/inference.proto`` (``make proto``).

protoc names the module of a generated file after the proto's path (``aimass.v1``), which
would clash with this package; the stubs are written flat into ``aimass/gateway/_gen/`` with
that one import rewritten. A unit test regenerates them into a temporary folder and fails when
the committed ones differ.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from aimass.settings import PROJECT_ROOT

PROTO_ROOT = PROJECT_ROOT / "proto"
PROTO_FILE = "aimass/v1/inference.proto"
GEN_DIR = Path(__file__).resolve().parent / "_gen"
GEN_PACKAGE = "aimass.gateway._gen"
GENERATED = ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py")


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc (grpcio-tools) and write the stubs into ``out_dir``; returns their paths.

    Raises:
        RuntimeError: protoc failed (its message is on stderr).
    """
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        args = ["grpc_tools.protoc", f"-I{proto_root}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}", str(proto_root / PROTO_FILE)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto_root / PROTO_FILE}")
        source = Path(tmp) / Path(PROTO_FILE).parent
        for name in GENERATED:
            text = (source / name).read_text(encoding="utf-8")
            text = text.replace("from aimass.v1 import inference_pb2", f"from {GEN_PACKAGE} import inference_pb2")
            target = out_dir / name
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main() -> int:
    """Regenerate the committed stubs."""
    for path in generate(GEN_DIR):
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
