"""The bench's own stack: Kafka (and Flink when AI Mass is measured) on ports of its own.

The ports and the state folder are set like the test stack's (``tests/conftest.py``) so that
a user's stack and the test stacks keep running undisturbed; ``port_offset`` moves them all.
Only what :class:`BenchStack` started is stopped at the end.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from types import TracebackType

from aimass.settings import Settings
from aimass.stack.isolated import BENCH_PORTS, isolated_env
from aimass.stack.kafka import KafkaBroker
from aimass.stack.local import LocalStack, Say


def bench_env(port_offset: int = 0) -> dict[str, str]:
    """``AIMASS_*`` variables of the bench stack."""
    return isolated_env("bench", BENCH_PORTS, port_offset, {
        # Two TaskManagers of one slot: parallelism 2 gets two Python interpreters (two GILs),
        # as on a real cluster; parallelism 1 runs on one of them.
        "AIMASS_FLINK_TASKMANAGERS": "2",
        "AIMASS_FLINK_SLOTS": "1",
        "AIMASS_JOB_NAME": "aimass-bench",
        "AIMASS_ENGINE_USE_GPU": "false",
    })


def run_settings(base: Settings, run_name: str) -> Settings:
    """``base`` with topics of the run's own (so runs never see each other's data)."""
    kafka = replace(
        base.kafka,
        requests_topic=f"bench.{run_name}.requests",
        results_topic=f"bench.{run_name}.results",
        dead_letter_topic=f"bench.{run_name}.dead-letters",
    )
    return replace(base, kafka=kafka)


def create_topics(settings: Settings) -> None:
    """Create the run's request, result and dead-letter topics."""
    KafkaBroker(settings).ensure_topics()


def delete_topics(settings: Settings) -> None:
    """Delete the run's topics (their data can be GBs over a full run)."""
    k = settings.kafka
    admin = KafkaBroker(settings).admin()
    try:
        with contextlib.suppress(Exception):  # best effort: a topic left behind costs disk only
            admin.delete_topics([k.requests_topic, k.results_topic, k.dead_letter_topic])
    finally:
        admin.close()


class BenchStack:
    """Brings the bench stack up on entry and stops what it started on exit.

    Args:
        settings: The bench stack's settings (see :func:`bench_env`).
        flink: Whether the Flink cluster is needed (AI Mass runs); Kafka always is.
        manage: False to use a stack someone else runs (the test session's), untouched.
        keep: Leave what was started running at the end.
        say: Where progress messages go.
    """

    def __init__(self, settings: Settings, flink: bool, manage: bool = True, keep: bool = False,
                 say: Say = print) -> None:
        self.settings = settings
        self.keep = keep
        self.flink = flink
        self.manage = manage
        self.say = say
        self.stack = LocalStack(settings, say=say)
        self.started = False

    def __enter__(self) -> BenchStack:
        if not self.manage:
            return self
        running = {p.name for p in self.stack.processes() if p.pid() is not None}
        if self.flink:
            wanted = {p.name for p in self.stack.processes()}
            self.started = not wanted <= running
            self.stack.up()
        elif "kafka" not in running:
            self.started = True
            self.stack.preflight()
            self.say(f"starting Kafka on {self.settings.kafka.bootstrap} ...")
            self.stack.kafka.start()
            self.stack.kafka.wait_healthy()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.manage and self.started and not self.keep:
            stopped = self.stack.down()
            self.say(f"stopped {', '.join(stopped) or 'nothing'}")
