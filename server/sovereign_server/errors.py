"""The errors a caller can act on, each shaped as OpenAI's error object.

Plain exceptions, free of any transport: `interceptors` maps each to its gRPC status in one place,
and the gateway turns that into OpenAI's HTTP status and body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error a caller can act on, shaped as OpenAI's `{"error": {message, type, param, code}}`."""

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


class InvalidRequestError(ApiError):
    """The request is malformed (OpenAI answers 400)."""


class NotFoundError(ApiError):
    """The request names an object that does not exist (404)."""


class ConflictError(ApiError):
    """The request is valid but the resource's state forbids it (OpenAI answers 400)."""


class AuthenticationError(ApiError):
    """The call has no valid key, or names another project than its key's (401)."""

    def __init__(self, message: str, *, code: str | None = "invalid_api_key") -> None:
        super().__init__(message, code=code)


class PermissionDeniedError(ApiError):
    """The key is valid but may not do this (403)."""


class RateLimitError(ApiError):
    """The key is over its requests or tokens per minute (429); `retry_after` is in seconds."""

    def __init__(
        self, message: str, *, kind: str, retry_after: float, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        # OpenAI's type names the limit: "requests" or "tokens".
        self.error_type = kind
        self.retry_after = retry_after
        # The key's `x-ratelimit-*` headers at the time of the refusal.
        self.headers = headers


class ServerError(ApiError):
    error_type = "server_error"


class PayloadTooLargeError(InvalidRequestError):
    """The request's body is larger than the server accepts (413: the gateway sets the HTTP status
    from the `http_status` the error carries)."""

    http_status = 413
