"""Security properties of the wire path: no way out of the model repository, no code from the
wire, payload limits. (tests/unit/serving/test_models.py covers the basic traversal names and a
symlinked model directory; this file adds absolute paths, the wire decoder's refusal, symlinked
versions and files, and the static checks.)"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.limits import NAME_PATTERN
from aimass.contract.messages import InferenceRequest, Reason, Tensor
from aimass.serving.models import ModelError, ModelRepository
from aimass.settings import PROJECT_ROOT, JobSettings
from tests.onnx_models import linear_meta, write_model

CODEC = Codec()
TRAVERSALS = [
    ("..", None), ("../other", None), ("/etc", None), ("/etc/passwd", None), ("linear/../other", None),
    ("linear", "/tmp"), ("linear", "../../etc"), ("linear", ".."), ("linear", "1/../../other"),
    ("linear", "./1"), ("~", None), ("linear\\..\\other", None), ("linear\x00", None),
]


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    write_model(tmp_path / "models", "linear", "1")
    write_model(tmp_path / "models", "other", "1")
    return ModelRepository(tmp_path / "models", rescan_interval_s=0)


def _request(model: str, version: str | None) -> bytes:
    x = Tensor("x", "float32", (1, 4), bytes(16))
    return CODEC.encode_request(InferenceRequest("r-1", model, (x,), 1, version))


@pytest.mark.parametrize(("model", "version"), TRAVERSALS)
def test_path_like_names_are_refused_by_the_repository(repository: ModelRepository, model: str,
                                                       version: str | None) -> None:
    with pytest.raises(ModelError) as caught:
        repository.resolve(model, version)
    assert caught.value.reason is Reason.INVALID_INPUT


@pytest.mark.parametrize(("model", "version"), TRAVERSALS)
def test_path_like_names_are_refused_on_the_wire_with_the_request_id(model: str, version: str | None) -> None:
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_request(_request(model, version))
    assert (caught.value.reason, caught.value.request_id) == (Reason.INVALID_INPUT, "r-1")


@given(st.text(max_size=20), st.none() | st.text(max_size=20))
def test_any_name_the_decoder_accepts_stays_one_path_component(model: str, version: str | None) -> None:
    try:
        request = CODEC.decode_request(_request(model, version))
    except DecodeError:
        return
    for part in (request.model, request.version):
        if part is not None:
            assert NAME_PATTERN.fullmatch(part)
            assert "/" not in part and "\\" not in part and not part.startswith(".")
            assert Path(part).name == part and not Path(part).is_absolute()


def test_symlinked_version_leading_out_is_refused(tmp_path: Path, repository: ModelRepository) -> None:
    outside = write_model(tmp_path / "elsewhere", "linear", "9")
    (repository.root / "linear" / "9").symlink_to(outside, target_is_directory=True)
    assert repository.versions("linear") == ["1"]
    with pytest.raises(ModelError) as caught:
        repository.resolve("linear", "9")
    assert caught.value.reason is Reason.INVALID_INPUT


def test_symlink_inside_the_repository_is_served(repository: ModelRepository) -> None:
    store = repository.root / ".store" / "1"  # hidden: not a model itself
    store.mkdir(parents=True)
    (store / "model.json").write_text(json.dumps(linear_meta()))
    (store / "model.onnx").write_bytes((repository.root / "linear" / "1" / "model.onnx").read_bytes())
    (repository.root / "alias").symlink_to(store.parent, target_is_directory=True)
    assert repository.resolve("alias", "1").version == "1"


def test_model_file_symlinked_out_of_the_repository_is_refused(tmp_path: Path, repository: ModelRepository) -> None:
    outside = write_model(tmp_path / "elsewhere", "linear", "1")
    version = repository.root / "filelink" / "1"
    version.mkdir(parents=True)
    (version / "model.json").write_text(json.dumps(linear_meta()))
    (version / "model.onnx").symlink_to(outside / "model.onnx")
    with pytest.raises(ModelError, match="leads out of the model repository"):
        repository.resolve("filelink")


# -- no code from the wire -------------------------------------------------------------------

WIRE_MODULES = sorted(
    list((PROJECT_ROOT / "aimass" / "contract").glob("*.py"))
    + list((PROJECT_ROOT / "aimass" / "serving").glob("*.py"))
    + list((PROJECT_ROOT / "udfs").glob("*.py"))
    + list((PROJECT_ROOT / "aimass" / "gateway").glob("*.py"))
)
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}


@pytest.mark.parametrize("path", WIRE_MODULES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_wire_path_neither_unpickles_nor_evaluates(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported = {(node.module or "").split(".")[0]}
        else:
            imported = set()
        assert not imported & UNSAFE_MODULES, f"{path.name}:{node.lineno} imports {imported & UNSAFE_MODULES}"
        if isinstance(node, ast.Call):
            func = node.func
            # The builtins, bare or as builtins.eval (re.compile is not one of them).
            name = func.id if isinstance(func, ast.Name) else ""
            if isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "builtins":
                name = func.attr
            assert name not in UNSAFE_CALLS, f"{path.name}:{node.lineno} calls {name}()"
            if name == "load" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "yaml":
                pytest.fail(f"{path.name}:{node.lineno} calls yaml.load (use safe_load)")


def test_the_job_decodes_with_the_payload_limit() -> None:
    tree = ast.parse((PROJECT_ROOT / "aimass" / "serving" / "batches.py").read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "decode_request"]
    assert calls and all(len(c.args) + len(c.keywords) == 2 for c in calls), "decode_request without max_bytes"


# -- size limits -----------------------------------------------------------------------------


def test_oversized_request_is_refused_before_it_is_parsed() -> None:
    limit = JobSettings().max_payload_bytes
    # A body that would expand into millions of objects if parsed.
    hostile = _request("linear", None)[:10] + b"\x02" + b"r" + b"\x01" * (limit + 1)
    started = time.perf_counter()
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_request(hostile, limit)
    assert caught.value.reason is Reason.OVERSIZED and str(limit) in caught.value.message
    assert time.perf_counter() - started < 0.5


def test_one_payload_limit_for_the_gateway_and_the_job() -> None:
    import dataclasses

    from aimass.settings import GatewaySettings

    # The gateway bounds requests by the job's limit (tests/unit/gateway checks the refusal):
    # no second limit that could disagree with it.
    assert "max_payload_bytes" not in {f.name for f in dataclasses.fields(GatewaySettings)}
    assert JobSettings().max_payload_bytes == 4 * 1024 * 1024
