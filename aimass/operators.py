"""The job's operators, named once: the job sets these names (what the Flink web UI and the
REST API show) and uids (what checkpoints and savepoints key state by), and the CLI, the
autoscaler and the tests find the operators by them.

Never change a uid: a savepoint restores state by uid, and a renamed one loses its state
(``tests/unit/test_operators.py`` pins them). A name may change; ``batch-infer``'s uid is
older than its name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Operator:
    """One operator of the inference job: its display name and its state uid."""

    name: str
    uid: str


#: Applies control-topic commands (broadcast to ``route``); parallelism 1.
CONTROL = Operator("control", "control")
#: Java: peeks each request's model, routes it to a version and a lane (docs/CONTROL.md).
ROUTE = Operator("route", "route")
#: Java keyed state: the scheduler (priority, deadlines, admission) and the micro-batches.
MICRO_BATCH = Operator("micro-batch", "micro-batch")
#: Python: one call per batch (decode, engine or graph, encode); the vertex the autoscaler reads.
BATCH_INFER = Operator("batch-infer", "infer-batch")
#: Java: splits the Python step's output frames into results, dead letters and shadows.
SPLIT_OUTPUTS = Operator("split-outputs", "split-outputs")
#: Java keyed state: one result per request id (the de-duplication before the sink).
DEDUP = Operator("dedup", "dedup")

ALL = (CONTROL, ROUTE, MICRO_BATCH, BATCH_INFER, SPLIT_OUTPUTS, DEDUP)
