"""Each request rule in one place: the codec (what the job decodes), the client (what it
produces) and the engine apply the very same checks, with the same words."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimass.client import InvalidRequest, validation
from aimass.contract.codec import Codec, DecodeError
from aimass.contract.limits import MAX_EMPTY_ROWS
from aimass.contract.messages import InferenceRequest, Reason, Tensor
from aimass.contract.rules import inputs_refusal
from aimass.serving.fit import input_problem
from aimass.serving.models import ModelSpec, TensorSpec

CODEC = Codec()
AIMASS = Path(__file__).resolve().parents[3] / "aimass"
BAD = [
    ((Tensor("x", "float32", (2, 2), b"\x00" * 15),), "needs 16 bytes, got 15"),
    ((Tensor("x", "float16", (1,), b"\x00\x00"),), "dtype 'float16' is not one of"),
    ((Tensor("x", "bool", (2,), b"\x00\x02"),), "bool elements must be bytes 0 or 1"),
    ((Tensor("", "float32", (1,), b"\x00" * 4),), "an input has an empty name"),
    ((Tensor("a", "float32", (1,), b"\x00" * 4),) * 2, "duplicate input name 'a'"),
    ((Tensor("a", "float32", (1,), b"\x00" * 4), Tensor("b", "float32", (2,), b"\x00" * 8)),
     "inputs differ in first dimension (rows): 'a'=1, 'b'=2"),
    ((), "request has no inputs"),
]


@pytest.mark.parametrize(("tensors", "words"), BAD)
def test_the_codec_and_the_client_refuse_alike(tensors: tuple[Tensor, ...], words: str) -> None:
    refusal = inputs_refusal(tensors)
    assert refusal is not None and refusal.reason is Reason.INVALID_INPUT and words in refusal.message
    with pytest.raises(InvalidRequest) as by_client:
        validation.check_tensors(tensors)
    assert str(by_client.value.args[0] if by_client.value.args else by_client.value) == refusal.message
    data = CODEC.encode_request(InferenceRequest("r-1", "m", tensors, 0))
    with pytest.raises(DecodeError) as by_codec:
        CODEC.decode_request(data)
    assert by_codec.value.reason is Reason.INVALID_INPUT and refusal.message in str(by_codec.value)


def _spec() -> ModelSpec:
    x, y = TensorSpec("x", "float32", (None, None, None)), TensorSpec("y", "float32", (None,))
    return ModelSpec("m", "1", Path("."), (x,), (y,))


@pytest.mark.parametrize("shape", [(0, 2, 4), (1, MAX_EMPTY_ROWS + 1, 0)])
def test_the_client_applies_the_engines_model_fit_rules(shape: tuple[int, ...]) -> None:
    tensors = (Tensor("x", "float32", shape, b""),)
    problem = input_problem(_spec(), tensors)
    assert problem is not None
    with pytest.raises(InvalidRequest, match="rows"):
        validation.check_against_spec(_spec(), tensors)


def test_each_rules_words_are_written_once_in_the_package() -> None:
    sources = {p: p.read_text(encoding="utf-8") for p in AIMASS.rglob("*.py") if "_gen" not in p.parts}
    # (Tensor.to_numpy keeps its own shape and byte checks: a value type guarding itself, not a request rule.)
    for words in ("bool elements must be bytes 0 or 1", "dtype {show(t.dtype)} is not one of", "has an empty name",
                  "duplicate input name", "differ in first dimension", "request has no inputs",
                  "more than {MAX_INPUTS} inputs", "has more than \"",
                  "{list(t.shape)} of {t.dtype} needs", "must have rank", "rows of no data", "has no rows"):
        sources_with = {p: t for p, t in sources.items() if p.name != "messages.py"}
        homes = sorted(str(p.relative_to(AIMASS)) for p, text in sources_with.items() if words in text)
        assert len(homes) == 1, (words, homes)
