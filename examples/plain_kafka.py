"""Send one inference request and read its result with kafka-python and fastavro only.

No AI Mass import: this is what a client in any language does. The wire format is Avro
single-object encoding of the schemas in ``schemas/`` (see ``schemas/README.md``); requests are
keyed by request id, results come back keyed by the same id on a compacted topic.

    .venv/bin/python examples/plain_kafka.py --bootstrap 127.0.0.1:19092

Prints the result and exits 0 when it is OK (1 for an error result, 3 when none came in time).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

DTYPES = {"float32": "<f4", "float64": "<f8", "int64": "<i8", "int32": "<i4", "uint8": "u1", "bool": "?"}
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def load_schemas(folder: Path) -> tuple[Any, Any]:
    """The request and result schemas, self-contained (``expand=True`` inlines the tensor type,
    which the fingerprint needs)."""
    named: dict[str, Any] = {}
    schemas = {}
    for name in ("tensor", "request", "result"):
        raw = json.loads((folder / f"{name}.avsc").read_text(encoding="utf-8"))
        schemas[name] = parse_schema(raw, named_schemas=named, expand=True)
    return schemas["request"], schemas["result"]


def header(schema: Any) -> bytes:
    """Single-object encoding header: marker C3 01 + little-endian CRC-64-AVRO fingerprint."""
    return b"\xc3\x01" + bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--requests-topic", default="aimass.requests")
    parser.add_argument("--results-topic", default="aimass.results")
    parser.add_argument("--schemas", type=Path, default=SCHEMAS)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    request_schema, result_schema = load_schemas(args.schemas)
    request_header, result_header = header(request_schema), header(result_schema)

    # Listen first (at the end of every partition), then send: the result cannot be missed.
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False)
    partitions = [TopicPartition(args.results_topic, p) for p in consumer.partitions_for_topic(args.results_topic)]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for tp in partitions:
        consumer.position(tp)

    pixels = np.random.default_rng(0).random((1, 64), dtype=np.float32)
    request_id = str(uuid.uuid4())
    request = {
        "request_id": request_id,
        "model": args.model,
        "version": None,
        "inputs": [{"name": "pixels", "dtype": "float32", "shape": list(pixels.shape),
                    "data": pixels.astype("<f4").tobytes()}],
        "deadline_ms": None,
        "priority": 0,
        "created_at_ms": int(time.time() * 1000),
    }
    value = io.BytesIO()
    value.write(request_header)
    schemaless_writer(value, request_schema, request)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    producer.send(args.requests_topic, key=request_id.encode(), value=value.getvalue()).get(timeout=30)
    producer.close()
    print(f"sent request {request_id}")

    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key != request_id.encode() or record.value[:10] != result_header:
                        continue
                    result = schemaless_reader(io.BytesIO(record.value[10:]), result_schema, None)
                    print(f"status {result['status']} version {result['version']} error {result['error']}")
                    print(f"timings {result['timings']}")
                    for out in result["outputs"]:
                        array = np.frombuffer(out["data"], dtype=DTYPES[out["dtype"]]).reshape(out["shape"])
                        print(f"output {out['name']} = {array.tolist()}")
                    return 0 if result["status"] == "OK" else 1
    finally:
        consumer.close()
    print(f"no result for {request_id} within {args.timeout:g} s", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
