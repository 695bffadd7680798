"""The domain errors servicers raise, each with its gRPC status and OpenAI's error object.

They are turned into gRPC statuses in one place, `interceptors.CallInterceptor`."""

from __future__ import annotations

import json
from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

# Trailing metadata key carrying OpenAI's JSON error body; the gateway turns it into the HTTP body.
OPENAI_ERROR_METADATA_KEY = "x-openai-error"


class ApiError(Exception):
    """An error a caller can act on, shaped as OpenAI's `{"error": {message, type, param, code}}`."""

    status: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    error_type: str = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_rpc_status(self) -> grpc.Status:
        """The status with its trailing metadata: OpenAI's body for the gateway, `ErrorInfo` for gRPC callers."""
        info = error_details_pb2.ErrorInfo(
            reason=self.code or self.error_type,
            domain=self.error_type,
            metadata={"param": self.param} if self.param else {},
        )
        status = status_pb2.Status(code=_CODES[self.status], message=self.message)
        status.details.add().Pack(info)
        converted = rpc_status.to_status(status)
        # ensure_ascii keeps the header value within what HTTP/2 metadata allows.
        body = json.dumps(self.body(), ensure_ascii=True, separators=(",", ":"))
        return _Status(
            converted.code,
            converted.details,
            (*converted.trailing_metadata, (OPENAI_ERROR_METADATA_KEY, body)),
        )


class InvalidRequestError(ApiError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ApiError):
    status = grpc.StatusCode.NOT_FOUND


class ConflictError(ApiError):
    """The request is valid but the resource's state forbids it (OpenAI answers 400)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class ServerError(ApiError):
    status = grpc.StatusCode.INTERNAL
    error_type = "server_error"


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, str | bytes], ...]):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
}
