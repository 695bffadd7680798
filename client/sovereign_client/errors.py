"""Errors the client raises, named as the `openai` SDK names them, with OpenAI's `type`, `param`
and `code` read from the status's `google.rpc.ErrorInfo` detail."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class APIError(Exception):
    def __init__(self, status: grpc.StatusCode, message: str, *, type: str | None, param: str | None, code: str | None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code


class BadRequestError(APIError):
    """INVALID_ARGUMENT or FAILED_PRECONDITION: HTTP 400 through the gateway."""


class NotFoundError(APIError):
    """NOT_FOUND: HTTP 404 through the gateway."""


class InternalServerError(APIError):
    """Any other status."""


def from_rpc_error(error: grpc.RpcError) -> APIError:
    call: grpc.Call = error  # type: ignore[assignment]
    status = rpc_status.from_call(call)
    error_type = param = code = None
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            error_type, code = info.domain, info.reason
            param = info.metadata.get("param")
    if code == error_type:
        code = None  # the server puts the type in `reason` when OpenAI gives no code
    kind: type[APIError] = InternalServerError
    if call.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        kind = BadRequestError
    elif call.code() == grpc.StatusCode.NOT_FOUND:
        kind = NotFoundError
    return kind(call.code(), call.details() or "", type=error_type, param=param, code=code)
