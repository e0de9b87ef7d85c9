"""The plain Python loop: consume a batch, score it, produce the results, commit, repeat.

At-least-once: offsets are committed only after every result produced before the commit
has been acknowledged by the broker (``flush`` then ``commit``), at most every
``--commit-interval-ms``; a crash between the two replays requests whose results are
already out (identical duplicates, keyed by request id). Results become readable as soon as
the broker has them, not at the commit.

Run as ``python -m bench.systems.plain_loop --group G``; topics and broker come from the
``AIMASS_*`` settings. Stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import time

from aimass.settings import Settings
from bench.scoring import Scorer


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-delay-ms", type=int, default=20)
    parser.add_argument("--commit-interval-ms", type=int, default=100)
    args = parser.parse_args(argv)

    from confluent_kafka import Consumer, Producer

    settings = Settings.load()
    k = settings.kafka
    scorer = Scorer(settings)
    consumer = Consumer({
        "bootstrap.servers": k.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 5,
    })
    producer = Producer({"bootstrap.servers": k.bootstrap, "acks": "all", "linger.ms": 1,
                         "message.max.bytes": settings.job.max_payload_bytes + 65536})
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe([k.requests_topic])
    last_commit, pending = time.monotonic(), False
    timeout = args.max_delay_ms / 1000.0
    try:
        while not stopping:
            messages = consumer.consume(num_messages=args.max_batch_size, timeout=timeout)
            values = [m.value() for m in messages if m.error() is None]
            if values:
                for key, value in scorer.score(values):
                    while True:
                        try:
                            producer.produce(k.results_topic, value=value, key=key)
                            break
                        except BufferError:
                            producer.poll(0.01)
                producer.poll(0)
                pending = True
            if pending and time.monotonic() - last_commit >= args.commit_interval_ms / 1000.0:
                producer.flush()
                consumer.commit(asynchronous=False)
                last_commit, pending = time.monotonic(), False
    finally:
        producer.flush()
        if pending:
            consumer.commit(asynchronous=False)
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
