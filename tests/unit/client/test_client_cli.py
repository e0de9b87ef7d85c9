"""CLI parsing of request/result/watch/gateway and reading input files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from aimass.cli import build_parser
from aimass.client.cli import _row, cmd_request
from aimass.client.files import InputFileError, fit, load_arrays, parse_input
from aimass.contract.messages import InferenceResult, Status, Tensor, Timings
from aimass.serving.models import TensorSpec
from aimass.settings import Settings

PIXELS = TensorSpec("pixels", "float32", (None, 64))


def test_request_parses_inputs_split_and_wait() -> None:
    args = build_parser().parse_args(
        ["request", "digits", "-i", "pixels=x.npy", "--input", "b.npz", "--split", "10", "--wait", "5",
         "--version", "2", "--deadline-s", "1.5"]
    )
    assert args.command == "request" and args.model == "digits"
    assert args.input == ["pixels=x.npy", "b.npz"]
    assert (args.split, args.wait, args.version, args.deadline_s) == (10, 5.0, "2", 1.5)


def test_result_watch_and_gateway_parse() -> None:
    parser = build_parser()
    result = parser.parse_args(["result", "abc", "--wait", "3", "--json"])
    assert (result.request_id, result.wait, result.json) == ("abc", 3.0, True)
    watch = parser.parse_args(["watch", "--from-beginning", "-n", "5", "--model", "digits"])
    assert (watch.from_beginning, watch.count, watch.model) == (True, 5, "digits")
    gateway = parser.parse_args(["gateway", "--port", "0", "--host", "0.0.0.0"])
    assert (gateway.port, gateway.host) == (0, "0.0.0.0")


def test_submit_still_submits_the_job() -> None:
    assert build_parser().parse_args(["submit"]).func.__name__ == "cmd_submit"


def test_request_needs_an_input() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["request", "digits"])


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("pixels=a/b.npy", ("pixels", Path("a/b.npy"))), ("batch.npz", (None, Path("batch.npz")))],
)
def test_parse_input(arg: str, expected: tuple[str | None, Path]) -> None:
    assert parse_input(arg) == expected


@pytest.mark.parametrize("arg", ["x.npy", "=x.npy"])
def test_parse_input_refuses_unnamed_files(arg: str) -> None:
    with pytest.raises(InputFileError):
        parse_input(arg)


def test_npy_json_and_npz_inputs_are_fitted_to_the_model(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.arange(64, dtype=np.float64))
    (tmp_path / "one.json").write_text(json.dumps(list(range(64))))
    np.savez(tmp_path / "many.npz", pixels=np.zeros((5, 64), np.float32))
    spec = {"pixels": PIXELS}
    for name, path in (("pixels", tmp_path / "one.npy"), ("pixels", tmp_path / "one.json")):
        array = load_arrays(name, path, spec)["pixels"]
        assert array.shape == (1, 64) and array.dtype == np.float32
    assert load_arrays(None, tmp_path / "many.npz", spec)["pixels"].shape == (5, 64)


def test_json_without_a_model_defaults_to_float32(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[[1.5, 2.5]]")
    assert load_arrays("x", tmp_path / "x.json")["x"].dtype == np.float32


def test_lossy_casts_are_left_to_validation() -> None:
    assert fit(np.zeros((1, 64), np.complex64), PIXELS).dtype == np.complex64
    assert fit(np.zeros((1, 64), np.int64), PIXELS).dtype == np.float32


def test_images_without_pillow_get_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "PIL" else real_find_spec(name, *a)
    )
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InputFileError, match="needs Pillow, which is not installed"):
        load_arrays("pixels", tmp_path / "digit.png", {"pixels": PIXELS})


def test_unreadable_and_unknown_files_are_explained(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("1 2 3")
    (tmp_path / "bad.npy").write_bytes(b"nope")
    with pytest.raises(InputFileError, match="unknown kind '.txt'"):
        load_arrays("x", tmp_path / "x.txt")
    with pytest.raises(InputFileError, match="cannot read"):
        load_arrays("x", tmp_path / "bad.npy")
    with pytest.raises(InputFileError, match="no such file"):
        load_arrays("x", tmp_path / "missing.npy")


def test_request_command_reports_invalid_inputs_without_kafka(
    tmp_path: Path, offline_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((1, 63), np.float32))
    args = build_parser().parse_args(["request", "digits", "-i", f"pixels={tmp_path / 'bad.npy'}"])
    assert cmd_request(offline_settings, args) == 2
    assert "shape [1, 63]" in capsys.readouterr().err


def test_watch_row_is_readable() -> None:
    result = InferenceResult(
        request_id="0b3c", model="digits", status=Status.OK, completed_at_ms=1_700_000_000_123, version="1",
        outputs=(Tensor.from_numpy("label", np.array([7])), Tensor.from_numpy("p", np.zeros((1, 10), np.float32))),
        timings=Timings(batch_size=4, end_to_end_ms=12.5),
    )
    row = _row(result)
    assert "0b3c" in row and "digits:1" in row and "label=[7]" in row and "p=float32[1, 10]" in row
    assert ".123" in row and "12.5" in row


def test_an_image_becomes_one_scaled_row_of_the_declared_shape(tmp_path: Path) -> None:
    from PIL import Image

    pixels = (np.arange(64, dtype=np.uint8) * 4).reshape(8, 8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "digit.png")
    array = load_arrays("pixels", tmp_path / "digit.png", {"pixels": PIXELS})["pixels"]
    assert array.shape == (1, 64) and array.dtype == np.float32
    np.testing.assert_allclose(array[0], pixels.ravel() / 255.0, rtol=1e-6)
    with pytest.raises(InputFileError, match="takes \\[10\\] per row"):
        load_arrays("pixels", tmp_path / "digit.png", {"pixels": TensorSpec("pixels", "float32", (None, 10))})


def test_printed_results_escape_terminal_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    from aimass.client.cli import _print_result

    hostile = "id\x1b]0;owned\x07\x1b[2J\r\u202e"
    result = InferenceResult(request_id=hostile, model="m\x1b[31m", status=Status.INVALID_INPUT, completed_at_ms=1,
                             error="bad\x1b[1Aline", timings=Timings())
    row = _row(result)
    _print_result(result)
    printed = capsys.readouterr().out
    for text in (row, printed):
        assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\x07" not in text
    assert "id\\x1b]0;owned\\x07\\x1b[2J\\r\\u202e" in printed and "bad\\x1b[1Aline" in row
