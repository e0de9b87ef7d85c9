"""Reading the Prometheus endpoints of the local cluster (``flink.metrics_port``): the text
format parsed into samples, and sums over them (the tests, ``aimass status``)."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: metric name, labels, value."""

    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> list[Sample]:
    """Samples of a text exposition (comments and unparsable lines skipped)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(match.group(2) or "")}
        out.append(Sample(match.group(1), labels, value))
    return out


def scrape(url: str, timeout: float = 5.0) -> list[Sample]:
    """GET ``url`` (a ``/metrics`` endpoint) and parse it."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http URL of our own process
        return parse(response.read().decode("utf-8", "replace"))


def total(samples: Iterable[Sample], suffix: str, **labels: str) -> float:
    """Sum of the samples whose name ends with ``suffix`` and that carry ``labels`` (over subtasks)."""
    return sum(s.value for s in samples
               if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items()))
