from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from sovereign_assistant.v1 import run_service_pb2_grpc
from sovereign_server.errors import ApiError


class NotServedError(ApiError):
    status = grpc.StatusCode.UNIMPLEMENTED
    error_type = "server_error"


def _not_served() -> NoReturn:
    raise NotServedError("Runs are not served by this version of the server.")


class RunServicer(run_service_pb2_grpc.RunServiceServicer):
    """Runs are declared in the contract so that the JSON model is settled; every method answers
    UNIMPLEMENTED until runs are served."""

    async def CreateRun(self, request: Any, context: Any) -> AsyncIterator[Any]:
        _not_served()
        yield

    async def CreateThreadAndRun(self, request: Any, context: Any) -> AsyncIterator[Any]:
        _not_served()
        yield

    async def SubmitToolOutputs(self, request: Any, context: Any) -> AsyncIterator[Any]:
        _not_served()
        yield

    async def CreateRunEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        _not_served()
        yield

    async def CreateThreadAndRunEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        _not_served()
        yield

    async def SubmitToolOutputsEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        _not_served()
        yield

    async def ListRuns(self, request: Any, context: Any) -> Any:
        _not_served()

    async def GetRun(self, request: Any, context: Any) -> Any:
        _not_served()

    async def ModifyRun(self, request: Any, context: Any) -> Any:
        _not_served()

    async def CancelRun(self, request: Any, context: Any) -> Any:
        _not_served()

    async def ListRunSteps(self, request: Any, context: Any) -> Any:
        _not_served()

    async def GetRunStep(self, request: Any, context: Any) -> Any:
        _not_served()
