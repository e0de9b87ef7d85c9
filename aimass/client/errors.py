"""Typed errors of the client library (and of the gateway, which maps them to gRPC codes)."""

from __future__ import annotations

from aimass.contract.messages import Status


class ClientError(Exception):
    """Base class of every error the client library raises on purpose."""


class InvalidRequest(ClientError, ValueError):
    """A request refused before anything reached Kafka.

    Attributes:
        status: The result status the job would have answered with (INVALID_INPUT or
            UNKNOWN_MODEL).
        message: What is wrong, naming the input.
    """

    def __init__(self, message: str, status: Status = Status.INVALID_INPUT) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PayloadTooLarge(InvalidRequest):
    """The encoded request exceeds the configured maximum payload."""


class ResultTimeout(ClientError, TimeoutError):
    """No result arrived for a request id within the time given."""

    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__(f"no result for request {request_id} within {timeout_s:g} s")
        self.request_id = request_id
        self.timeout_s = timeout_s


class Unavailable(ClientError, ConnectionError):
    """Kafka did not take the request (or could not be reached) within the bounded time."""


class SubmitFailed(ClientError):
    """A request accepted by :meth:`Client.submit` was later refused by Kafka (delivery failed)."""

    def __init__(self, request_id: str, cause: BaseException) -> None:
        super().__init__(f"request {request_id} was not delivered to Kafka: {type(cause).__name__}: {cause}")
        self.request_id = request_id
        self.cause = cause
