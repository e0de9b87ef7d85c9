"""Quix Streams serving the same model: one record per call, exactly-once by default.

A StreamingDataFrame applies the shared :class:`bench.scoring.Scorer` to each request value
and writes the result to the results topic under the request's key (its id). Quix Streams
has no micro-batching operator; buffering rows in the function's memory would break its
exactly-once guarantee, so every ONNX Runtime call here has one row. With
``processing_guarantee="exactly-once"`` results are written in Kafka transactions and become
readable at each commit (``--commit-interval-s``, like AI Mass's checkpoint interval).

Run as ``python -m bench.systems.quix_app --group G``; topics and broker come from the
``AIMASS_*`` settings. Stops cleanly on SIGTERM (Quix handles it).
"""

from __future__ import annotations

import argparse
import logging

from aimass.settings import Settings
from bench.scoring import Scorer


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--guarantee", choices=["exactly-once", "at-least-once"], default="exactly-once")
    parser.add_argument("--commit-interval-s", type=float, default=1.0)
    parser.add_argument("--max-batch-size", type=int, default=32, help="unused: Quix scores one record per call")
    parser.add_argument("--max-delay-ms", type=int, default=20, help="unused: Quix scores one record per call")
    args = parser.parse_args(argv)

    from quixstreams import Application

    settings = Settings.load()
    k = settings.kafka
    scorer = Scorer(settings)
    app = Application(
        broker_address=k.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee=args.guarantee,
        commit_interval=args.commit_interval_s,
        state_dir=str(settings.paths.state_dir / "quix" / args.group),
        use_changelog_topics=False,
        loglevel=logging.WARNING,
        consumer_extra_config={"fetch.wait.max.ms": 5},
        producer_extra_config={"linger.ms": 1},
    )
    requests = app.topic(k.requests_topic, key_deserializer="bytes", value_deserializer="bytes")
    results = app.topic(k.results_topic, key_serializer="bytes", value_serializer="bytes")

    def score(value: bytes) -> bytes | None:
        served = scorer.score([value])
        return served[0][1] if served else None

    sdf = app.dataframe(requests)
    sdf = sdf.apply(score).filter(lambda value: value is not None)
    sdf.to_topic(results)
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
