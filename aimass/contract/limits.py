"""Every limit of the wire contract, in one place: the codec, the engine, the client, the
gateway and the job's Java steps (``RequestPeek``, ``Answers``) apply these, and
``schemas/README.md`` documents them.

No imports beyond the standard library: anything may read a limit.
"""

from __future__ import annotations

import re

#: Model names and versions: safe as one path component (no separators, no leading dot).
#: Always used whole (``NAME_PATTERN.fullmatch``).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
#: Most dimensions a tensor may have (numpy's limit is 64; no model needs more than a few).
MAX_DIMS = 32
#: Most input tensors a request may carry.
MAX_INPUTS = 1024
#: Longest request id, in UTF-8 bytes. The id is the result's Kafka key and is repeated in its
#: value, in its dead letter and in the operator's de-duplication state: unbounded, a request
#: of ``max_payload_bytes`` with an id filling it has a result and a dead letter larger than
#: the output topics take (the sink fails, the job restarts, the record is read again).
MAX_REQUEST_ID_BYTES = 1024
#: Most steps (and missing members) a result's graph outcome may list: results are decoded
#: under bounds too (a forged one on the results topic must not cost seconds to read).
MAX_GRAPH_STEPS = 1024
#: Requests (and results) longer than this are scanned for their object counts before being decoded.
SCAN_ABOVE_BYTES = 64 * 1024
#: Most rows a tensor of no data may declare (the product of its non-zero dimensions): a tensor
#: of no data costs nothing on the wire, but its other dimensions still size the batch and what
#: ONNX Runtime allocates (a ReduceSum over the empty axis of (1, 2**31, 0) is an 8 GiB output).
MAX_EMPTY_ROWS = 4096
#: Longest error text in a result (clipped with "...").
MAX_ERROR_CHARS = 1024
#: What a Kafka record adds to its key and value (headers, batch framing), rounded up
#: generously: a record of ``limit - RECORD_OVERHEAD_BYTES`` key and value bytes fits a topic
#: whose ``max.message.bytes`` is ``limit``.
RECORD_OVERHEAD_BYTES = 1024
#: What a request message adds to its payload on the way in (the gRPC message around it, the
#: Kafka producer's request framing): the gateway's receive limit and the client's producer
#: request size are the payload limit plus this.
MESSAGE_OVERHEAD_BYTES = 64 * 1024
