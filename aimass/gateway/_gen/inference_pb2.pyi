from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    STATUS_OK: _ClassVar[Status]
    STATUS_INVALID_INPUT: _ClassVar[Status]
    STATUS_UNKNOWN_MODEL: _ClassVar[Status]
    STATUS_DEADLINE_EXCEEDED: _ClassVar[Status]
    STATUS_INTERNAL_ERROR: _ClassVar[Status]
    STATUS_OVERLOADED: _ClassVar[Status]
STATUS_UNSPECIFIED: Status
STATUS_OK: Status
STATUS_INVALID_INPUT: Status
STATUS_UNKNOWN_MODEL: Status
STATUS_DEADLINE_EXCEEDED: Status
STATUS_INTERNAL_ERROR: Status
STATUS_OVERLOADED: Status

class DeployRequest(_message.Message):
    __slots__ = ("directory", "file_uri", "in_ms")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    FILE_URI_FIELD_NUMBER: _ClassVar[int]
    IN_MS_FIELD_NUMBER: _ClassVar[int]
    directory: str
    file_uri: bool
    in_ms: int
    def __init__(self, directory: _Optional[str] = ..., file_uri: bool = ..., in_ms: _Optional[int] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("model", "in_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IN_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    in_ms: int
    def __init__(self, model: _Optional[str] = ..., in_ms: _Optional[int] = ...) -> None: ...

class VersionRef(_message.Message):
    __slots__ = ("model", "version", "in_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IN_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    in_ms: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., in_ms: _Optional[int] = ...) -> None: ...

class AliasRequest(_message.Message):
    __slots__ = ("model", "alias", "version", "in_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IN_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    alias: str
    version: str
    in_ms: int
    def __init__(self, model: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[str] = ..., in_ms: _Optional[int] = ...) -> None: ...

class SplitWeight(_message.Message):
    __slots__ = ("version", "weight")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    version: str
    weight: float
    def __init__(self, version: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class SplitRequest(_message.Message):
    __slots__ = ("model", "weights", "in_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    IN_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    weights: _containers.RepeatedCompositeFieldContainer[SplitWeight]
    in_ms: int
    def __init__(self, model: _Optional[str] = ..., weights: _Optional[_Iterable[_Union[SplitWeight, _Mapping]]] = ..., in_ms: _Optional[int] = ...) -> None: ...

class ShadowRequest(_message.Message):
    __slots__ = ("model", "version", "fraction", "in_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    IN_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    fraction: float
    in_ms: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., fraction: _Optional[float] = ..., in_ms: _Optional[int] = ...) -> None: ...

class ControlReply(_message.Message):
    __slots__ = ("command_id", "description", "effective_at_ms")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    description: str
    effective_at_ms: int
    def __init__(self, command_id: _Optional[str] = ..., description: _Optional[str] = ..., effective_at_ms: _Optional[int] = ...) -> None: ...

class RoutesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelRoute(_message.Message):
    __slots__ = ("model", "versions", "default_version", "aliases", "split", "shadow_version", "shadow_fraction", "shadow_agree", "shadow_disagree")
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SplitEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_AGREE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DISAGREE_FIELD_NUMBER: _ClassVar[int]
    model: str
    versions: _containers.RepeatedScalarFieldContainer[str]
    default_version: str
    aliases: _containers.ScalarMap[str, str]
    split: _containers.ScalarMap[str, float]
    shadow_version: str
    shadow_fraction: float
    shadow_agree: int
    shadow_disagree: int
    def __init__(self, model: _Optional[str] = ..., versions: _Optional[_Iterable[str]] = ..., default_version: _Optional[str] = ..., aliases: _Optional[_Mapping[str, str]] = ..., split: _Optional[_Mapping[str, float]] = ..., shadow_version: _Optional[str] = ..., shadow_fraction: _Optional[float] = ..., shadow_agree: _Optional[int] = ..., shadow_disagree: _Optional[int] = ...) -> None: ...

class RoutesReply(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelRoute]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelRoute, _Mapping]]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("model", "version", "inputs", "deadline_ms", "request_id", "priority")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    inputs: _containers.RepeatedCompositeFieldContainer[Tensor]
    deadline_ms: int
    request_id: str
    priority: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., deadline_ms: _Optional[int] = ..., request_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetResultRequest(_message.Message):
    __slots__ = ("request_id", "wait")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    wait: bool
    def __init__(self, request_id: _Optional[str] = ..., wait: bool = ...) -> None: ...

class StreamResultsRequest(_message.Message):
    __slots__ = ("request_ids", "include_stored")
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_STORED_FIELD_NUMBER: _ClassVar[int]
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    include_stored: bool
    def __init__(self, request_ids: _Optional[_Iterable[str]] = ..., include_stored: bool = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queued_ms", "batch_size", "inference_ms", "end_to_end_ms")
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    END_TO_END_MS_FIELD_NUMBER: _ClassVar[int]
    queued_ms: float
    batch_size: int
    inference_ms: float
    end_to_end_ms: float
    def __init__(self, queued_ms: _Optional[float] = ..., batch_size: _Optional[int] = ..., inference_ms: _Optional[float] = ..., end_to_end_ms: _Optional[float] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("request_id", "model", "version", "status", "outputs", "error", "timings", "completed_at_ms", "route", "graph")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    version: str
    status: Status
    outputs: _containers.RepeatedCompositeFieldContainer[Tensor]
    error: str
    timings: Timings
    completed_at_ms: int
    route: Route
    graph: GraphOutcome
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., outputs: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., error: _Optional[str] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., completed_at_ms: _Optional[int] = ..., route: _Optional[_Union[Route, _Mapping]] = ..., graph: _Optional[_Union[GraphOutcome, _Mapping]] = ...) -> None: ...

class GraphOutcome(_message.Message):
    __slots__ = ("partial", "missing", "steps")
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    partial: bool
    missing: _containers.RepeatedScalarFieldContainer[str]
    steps: _containers.RepeatedCompositeFieldContainer[StepTiming]
    def __init__(self, partial: bool = ..., missing: _Optional[_Iterable[str]] = ..., steps: _Optional[_Iterable[_Union[StepTiming, _Mapping]]] = ...) -> None: ...

class StepTiming(_message.Message):
    __slots__ = ("step", "model", "version", "status", "batch_size", "inference_ms", "finished_ms")
    STEP_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_MS_FIELD_NUMBER: _ClassVar[int]
    step: str
    model: str
    version: str
    status: str
    batch_size: int
    inference_ms: float
    finished_ms: float
    def __init__(self, step: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., status: _Optional[str] = ..., batch_size: _Optional[int] = ..., inference_ms: _Optional[float] = ..., finished_ms: _Optional[float] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("rule", "alias", "bucket", "primary_version", "agrees")
    RULE_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGREES_FIELD_NUMBER: _ClassVar[int]
    rule: str
    alias: str
    bucket: int
    primary_version: str
    agrees: bool
    def __init__(self, rule: _Optional[str] = ..., alias: _Optional[str] = ..., bucket: _Optional[int] = ..., primary_version: _Optional[str] = ..., agrees: bool = ...) -> None: ...
