"""``aimass.v1.Control``: the control topic's front door over gRPC (docs/CONTROL.md).

A thin adapter over :class:`aimass.control.admin.ControlAdmin`, whose calls (Kafka reads and
writes, an ONNX Runtime load for a deploy) run on a worker thread so the event loop keeps
serving. A change the rules refuse is FAILED_PRECONDITION with their message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from aimass.control import commands as c
from aimass.control.admin import AdminError, ControlAdmin, describe_routing
from aimass.gateway._gen import inference_pb2 as pb
from aimass.gateway._gen import inference_pb2_grpc as pb_grpc
from aimass.settings import Settings

log = logging.getLogger("aimass.gateway")

DEFAULT_IN_MS = 1000


class ControlServicer(pb_grpc.ControlServicer):
    """Each method checks and publishes one command; ``Routes`` reads the routing back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def _call(self, context: grpc.aio.ServicerContext, in_ms: int, work: Callable[[ControlAdmin], Any]) -> Any:
        def run() -> Any:
            with ControlAdmin(self.settings, activation_ms=in_ms or DEFAULT_IN_MS) as admin:
                return work(admin)

        try:
            return await asyncio.to_thread(run)
        except AdminError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Exception as exc:  # noqa: BLE001 - Kafka unreachable and the like
            log.warning("a control call failed: %s: %s", type(exc).__name__, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"the control topic could not be read or written ({type(exc).__name__}): try again")

    async def _publish(self, context: grpc.aio.ServicerContext, in_ms: int, action: Any) -> pb.ControlReply:
        command: c.Command = await self._call(context, in_ms, lambda admin: admin.publish(action))
        return _reply(command)

    async def Deploy(self, request: pb.DeployRequest, context: grpc.aio.ServicerContext) -> pb.ControlReply:  # noqa: N802
        command = await self._call(context, request.in_ms, lambda admin: admin.deploy(
            Path(request.directory), upload_bytes=not request.file_uri))
        return _reply(command)

    async def Retire(self, request: pb.VersionRef, context: grpc.aio.ServicerContext) -> pb.ControlReply:  # noqa: N802
        return await self._publish(context, request.in_ms, c.Retire(request.model, request.version))

    async def SetAlias(self, request: pb.AliasRequest, context: grpc.aio.ServicerContext) -> pb.ControlReply:  # noqa: N802
        return await self._publish(context, request.in_ms,
                                   c.SetAlias(request.model, request.alias, request.version or None))

    async def SetSplit(self, request: pb.SplitRequest, context: grpc.aio.ServicerContext) -> pb.ControlReply:  # noqa: N802
        weights = tuple((w.version, w.weight) for w in request.weights)
        return await self._publish(context, request.in_ms, c.SetSplit(request.model, weights))

    async def SetShadow(self, request: pb.ShadowRequest, context: grpc.aio.ServicerContext) -> pb.ControlReply:  # noqa: N802
        return await self._publish(context, request.in_ms,
                                   c.SetShadow(request.model, request.version or None, request.fraction or 1.0))

    async def Promote(self, request: pb.VersionRef, context: grpc.aio.ServicerContext) -> pb.ControlReply:  # noqa: N802
        return await self._publish(context, request.in_ms, c.Promote(request.model, request.version))

    async def Rollback(self, request: pb.ModelRef, context: grpc.aio.ServicerContext) -> pb.ControlReply:  # noqa: N802
        return await self._publish(context, request.in_ms, c.Rollback(request.model))

    async def Routes(self, request: pb.RoutesRequest, context: grpc.aio.ServicerContext) -> pb.RoutesReply:  # noqa: N802
        def read(admin: ControlAdmin) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            routing, _ = admin.routing()
            return describe_routing(routing), admin.shadow_counts()

        rows, shadows = await self._call(context, 0, read)
        models = []
        for row in rows:
            counts = shadows.get(row["model"])
            models.append(pb.ModelRoute(
                model=row["model"], versions=list(row["versions"]), default_version=row["default"] or "",
                aliases=row["aliases"], split=row["split"],
                shadow_version=(row["shadow"] or {}).get("version", ""),
                shadow_fraction=(row["shadow"] or {}).get("fraction", 0.0),
                shadow_agree=counts.agree if counts else 0, shadow_disagree=counts.disagree if counts else 0,
            ))
        return pb.RoutesReply(models=models)


def _reply(command: c.Command) -> pb.ControlReply:
    return pb.ControlReply(command_id=command.command_id, description=command.describe(),
                           effective_at_ms=command.effective_ms)
