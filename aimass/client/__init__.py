"""Submit now, read later: the Python client of AI Mass (no Flink import).

Public API:

- :class:`Client`: ``submit`` (non-blocking, batched produce; validated before Kafka),
  ``submit_many``, ``result(id, timeout)``, ``results()`` as they arrive, ``close``.
- :class:`AsyncClient`: the same with ``await``; one asyncio future per awaited id.
- :class:`ResultStore`: bounded, expiring, thread-safe results keyed by request id, with
  waiters and subscriptions (shared with the gRPC gateway).
- :class:`ResultFeed`: the background consumer that fills a store from the results topic.
- :func:`outputs`: a result's outputs as ``{name: numpy array}``.
- :class:`ControlAdmin`: what serves what (``routing``, ``shadow_counts``, ``refusals``) and
  changes to it (``deploy``, ``publish`` of a ``Retire``/``SetAlias``/``SetSplit``/``SetShadow``/
  ``Promote``/``Rollback`` from :mod:`aimass.control.commands`), checked by the job's rules
  (:class:`AdminError`); see docs/CONTROL.md.
- Errors: :class:`ClientError`, :class:`InvalidRequest`, :class:`PayloadTooLarge`,
  :class:`ResultTimeout`, :class:`Unavailable`, :class:`SubmitFailed`.
"""

from aimass.client.aio import AsyncClient
from aimass.client.client import Client, outputs
from aimass.client.errors import (
    ClientError,
    InvalidRequest,
    PayloadTooLarge,
    ResultTimeout,
    SubmitFailed,
    Unavailable,
)
from aimass.client.feed import ResultFeed
from aimass.client.store import ResultStore, Subscription
from aimass.control.admin import AdminError, ControlAdmin

__all__ = [
    "AdminError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ControlAdmin",
    "InvalidRequest",
    "PayloadTooLarge",
    "ResultFeed",
    "ResultStore",
    "ResultTimeout",
    "SubmitFailed",
    "Subscription",
    "Unavailable",
    "outputs",
]
