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


class AuthenticationError(APIError):
    """UNAUTHENTICATED: no key, an unknown or revoked one, or another project's (HTTP 401)."""


class PermissionDeniedError(APIError):
    """PERMISSION_DENIED: the key may not do this, such as a non-admin key on AdminService (HTTP 403)."""


class RateLimitError(APIError):
    """RESOURCE_EXHAUSTED: the key is over its requests or tokens per minute (HTTP 429)."""


class InternalServerError(APIError):
    """Any other status."""


_KINDS: dict[grpc.StatusCode, type[APIError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: BadRequestError,
    grpc.StatusCode.FAILED_PRECONDITION: BadRequestError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitError,
}


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
    kind = _KINDS.get(call.code(), InternalServerError)
    return kind(call.code(), call.details() or "", type=error_type, param=param, code=code)
