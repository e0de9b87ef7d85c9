"""The vectors shared with the Java operators' JUnit tests are what Python computes now."""

from __future__ import annotations

import pytest

from tests.vectors.make_vectors import HERE, VECTORS


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_shared_vectors_are_current(name: str) -> None:
    assert (HERE / name).read_text(encoding="utf-8") == VECTORS[name](), (
        f"tests/vectors/{name} is stale: run `python -m tests.vectors.make_vectors`, then the JUnit tests")
