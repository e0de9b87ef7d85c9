"""Time from ``aimass deploy`` to the first result served by the new version, for a big model.

``python -m bench.deploy_bench [--mb 100]`` builds an ONNX model of about that many MB (one
MatMul whose weights are the bytes), brings up the bench stack with the job, and deploys the
model twice: through the blob topic (upload in chunks, each TaskManager fetches and checks them)
and by ``file://`` (the local folder, no copy). For each it prints, and writes to
``bench/results/deploy.json``: the upload, the publish, and the first OK result of a request
sent right after the publish (requests are resent every 200 ms until one is answered OK by the
new version; the earlier ones get UNKNOWN_MODEL or wait in the batch for the load).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import Status
from aimass.control.admin import ControlAdmin
from aimass.settings import PROJECT_ROOT, Settings
from aimass.tools.traffic import consumer, make_request, producer, send_requests
from bench.report import write_figures
from bench.stack import BenchStack, bench_env


def build_model(directory: Path, name: str, mb: int) -> Path:
    """``<directory>/<name>/1``: y = x @ W with W of ``mb`` MB of float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    side = int((mb * 1e6 / 4) ** 0.5)
    weights = np.random.default_rng(1).standard_normal((side, side), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", side])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out = directory / name / "1"
    out.mkdir(parents=True)
    onnx.save(model, str(out / "model.onnx"))
    meta = {"name": name, "version": "1", "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, side]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, side]}], "max_batch_size": 4,
            "execution_providers": ["CPUExecutionProvider"]}
    (out / "model.json").write_text(json.dumps(meta))
    return out


def first_result(settings: Settings, codec: Codec, name: str, side: int, timeout_s: float = 300) -> dict[str, Any]:
    """Send a request every 200 ms until one gets an OK result; when, and what came before."""
    cons = consumer(settings.kafka, settings.kafka.results_topic, from_beginning=False)
    prod = producer(settings.kafka)
    began = time.monotonic()
    sent: dict[str, float] = {}
    before: dict[str, int] = {}
    try:
        while time.monotonic() - began < timeout_s:
            request = make_request(name, {"x": np.ones((1, side), np.float32)})
            send_requests(prod, codec, settings.kafka.requests_topic, [request])
            sent[request.request_id] = time.monotonic()
            for records in cons.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        result = codec.decode_result(record.value)
                    except DecodeError:
                        continue
                    if result.request_id not in sent:
                        continue
                    if result.status is Status.OK:
                        return {"first_ok_s": round(time.monotonic() - began, 2),
                                "its_request_sent_at_s": round(sent[result.request_id] - began, 2),
                                "earlier_answers": before}
                    before[result.status.value] = before.get(result.status.value, 0) + 1
        raise TimeoutError(f"no OK result for {name} within {timeout_s} s")
    finally:
        prod.close()
        cons.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="model size in MB (default 100)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results" / "deploy.json")
    args = parser.parse_args(argv)
    settings = Settings.load(env=bench_env(), overrides={"flink.taskmanagers": "1", "flink.slots": "2"})
    codec = Codec(settings.paths.schemas_dir)
    figures: dict[str, Any] = {"mb": args.mb, "command": f"python -m bench.deploy_bench --mb {args.mb}"}
    from aimass.stack import jobs

    with tempfile.TemporaryDirectory(prefix="aimass-deploy-") as tmp, BenchStack(settings, flink=True):
        jobs.submit(settings)
        for mode in ("kafka", "file"):
            name = f"big-{mode}-{uuid.uuid4().hex[:6]}"
            directory = build_model(Path(tmp), name, args.mb)
            side = json.loads((directory / "model.json").read_text())["inputs"][0]["shape"][1]
            size = (directory / "model.onnx").stat().st_size
            with ControlAdmin(settings, activation_ms=0) as admin:
                began = time.monotonic()
                admin.deploy(directory, upload_bytes=mode == "kafka")
                published = time.monotonic() - began
            served = first_result(settings, codec, name, side)
            figures[mode] = {"bytes": size, "check_upload_publish_s": round(published, 2), **served,
                             "deploy_to_first_result_s": round(published + served["first_ok_s"], 2)}
            print(f"{mode}: {size / 1e6:.0f} MB, check + upload + publish {published:.2f} s, first OK result "
                  f"{served['first_ok_s']:.2f} s later ({published + served['first_ok_s']:.2f} s in all); "
                  f"answers before it: {served['earlier_answers']}", flush=True)
        jobs.cancel(settings)
    write_figures(args.out, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
