"""Cross-cutting concerns of every call, in one interceptor: a structured log line per call, the
one map of domain errors to gRPC status, and a 400 for request bytes that do not parse."""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sovereign_server.auth import Gate
from sovereign_server.caller import Caller, set_current_caller
from sovereign_server.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from sovereign_server.metrics import Metrics
from sovereign_storage import DEFAULT_PROJECT_ID, ActiveRunError, InvalidCursorError, UnstorableValueError
from sovereign_storage import NotFoundError as StoredNotFoundError

logger = logging.getLogger("sovereign.calls")

# Trailing metadata key carrying OpenAI's JSON error body; the gateway turns it into the HTTP body.
OPENAI_ERROR_METADATA_KEY = "x-openai-error"
# Trailing metadata key of an HTTP status that no gRPC status maps to (413); the gateway applies it.
HTTP_STATUS_METADATA_KEY = "x-http-status"

# Each error class's status; the gateway maps these to OpenAI's HTTP statuses (400, 404, 500).
_STATUS: dict[type[ApiError], grpc.StatusCode] = {
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    ConflictError: grpc.StatusCode.FAILED_PRECONDITION,
    AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    RateLimitError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ServerError: grpc.StatusCode.INTERNAL,
}


def status_code(error: ApiError) -> grpc.StatusCode:
    for error_class in type(error).__mro__:
        if error_class in _STATUS:
            return _STATUS[error_class]
    return grpc.StatusCode.INVALID_ARGUMENT


def rpc_status_of(error: ApiError) -> grpc.Status:
    """The status with its trailing metadata: OpenAI's body for the gateway, `ErrorInfo` for gRPC callers."""
    info = error_details_pb2.ErrorInfo(
        reason=error.code or error.error_type,
        domain=error.error_type,
        metadata={"param": error.param} if error.param else {},
    )
    # StatusCode values are (number, name): the number is google.rpc's code.
    status = status_pb2.Status(code=status_code(error).value[0], message=error.message)
    status.details.add().Pack(info)
    converted = rpc_status.to_status(status)
    # ensure_ascii keeps the header value within what HTTP/2 metadata allows.
    body = json.dumps(error.body(), ensure_ascii=True, separators=(",", ":"))
    trailing = (*converted.trailing_metadata, (OPENAI_ERROR_METADATA_KEY, body))
    http_status = getattr(error, "http_status", None)
    if http_status is not None:
        trailing += ((HTTP_STATUS_METADATA_KEY, str(http_status)),)
    return _Status(converted.code, converted.details, trailing)


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, str | bytes], ...]):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def as_api_error(error: Exception) -> ApiError:
    """The caller-facing form of an error raised anywhere below a servicer."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, StoredNotFoundError):
        return NotFoundError(str(error))
    if isinstance(error, ActiveRunError):
        return ConflictError(str(error))
    if isinstance(error, InvalidCursorError):
        return InvalidRequestError(str(error), param=error.param, code="invalid_cursor")
    if isinstance(error, UnstorableValueError):
        return InvalidRequestError(str(error))
    logger.exception("unexpected error", exc_info=error)
    return ServerError("The server had an error while processing your request.")


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Admits each call through the gate (when the server has one), maps its errors, logs it."""

    def __init__(self, gate: Gate | None = None, metrics: Metrics | None = None) -> None:
        self._gate = gate
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        gate = None if self._gate is None or Gate.is_open(method) else self._gate
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(method, gate, self._metrics, handler.unary_unary),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(method, gate, self._metrics, handler.unary_stream),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _client_streaming(method, gate, self._metrics, handler.stream_unary),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # Bidirectional methods (reflection) pass through unlogged.
        return handler


class UndecodableRequest:
    """What the deserializer yields for bytes that are not the request message: the handler raises
    its error. (An exception from the deserializer itself would end the call as UNKNOWN, a 500.)"""

    def __init__(self, error: DecodeError) -> None:
        self.error = InvalidRequestError(
            "We could not parse the body of your request: a field holds a value of the wrong type "
            "(an object where a string is expected, for example) or text that is not valid UTF-8."
        )
        self.cause = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as error:
            return UndecodableRequest(error)

    return deserialize


def _decoded(request: Any) -> Any:
    if isinstance(request, UndecodableRequest):
        raise request.error from request.cause
    return request


class _Call:
    """One call's admission, response headers, error mapping and log line."""

    def __init__(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], gate: Gate | None, metrics: Metrics | None
    ) -> None:
        self._method = method
        self._context = context
        self._gate = gate
        self._metrics = metrics
        self._started = time.perf_counter()
        self._metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        self._caller: Caller | None = None
        self._headers: tuple[tuple[str, str], ...] = ()
        self.code = grpc.StatusCode.OK

    async def admit(self) -> None:
        if self._gate is None:
            set_current_caller(Caller(DEFAULT_PROJECT_ID))
            return
        admission = await self._gate.admit(self._method, self._metadata)
        self._caller = admission.caller
        self._headers = admission.allowance.headers()
        set_current_caller(admission.caller)

    async def send_headers(self) -> None:
        """Sends the rate-limit headers ahead of the first response (they become HTTP headers)."""
        if self._headers:
            headers, self._headers = self._headers, ()
            await self._context.send_initial_metadata(headers)

    async def fail(self, error: Exception) -> None:
        if isinstance(error, grpc.aio.AbortError):
            self.code = _code_of(self._context, grpc.StatusCode.UNKNOWN)
            raise error
        api_error = as_api_error(error)
        self.code = status_code(api_error)
        extra: tuple[tuple[str, str], ...] = self._headers
        if isinstance(api_error, RateLimitError):
            if self._metrics is not None:
                self._metrics.rate_limited.labels(api_error.error_type).inc()
            retry_after = api_error.retry_after
            extra += api_error.headers
            extra += (
                ("retry-after", str(math.ceil(retry_after))),
                ("retry-after-ms", str(math.ceil(retry_after * 1000))),
            )
        status = rpc_status_of(api_error)
        await self._context.abort(status.code, status.details, (*status.trailing_metadata, *extra))

    def log(self) -> None:
        elapsed = time.perf_counter() - self._started
        if self._metrics is not None:
            self._metrics.calls.labels(self._method, self.code.name).inc()
            self._metrics.call_seconds.labels(self._method).observe(elapsed)
        # A gateway's health checks come every second per replica: logged only when debugging.
        level = logging.DEBUG if self._method.startswith("/grpc.health.") else logging.INFO
        if logger.isEnabledFor(level):
            line: dict[str, Any] = {
                "method": self._method,
                "status": self.code.name,
                "duration_ms": round(elapsed * 1000, 3),
            }
            request_id = self._metadata.get("x-request-id")
            if request_id:
                line["request_id"] = request_id
            if self._caller is not None:
                line["project"] = self._caller.project_id
                if self._caller.key_id:
                    line["key"] = self._caller.key_id
            logger.log(level, json.dumps(line))


def _code_of(context: grpc.aio.ServicerContext[Any, Any], default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else default


def _unary(
    method: str, gate: Gate | None, metrics: Metrics | None, behaviour: Callable[..., Any]
) -> Callable[..., Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = _Call(method, context, gate, metrics)
        try:
            await call.admit()
            response = await behaviour(_decoded(request), context)
            await call.send_headers()
            return response
        except Exception as error:
            await call.fail(error)
        finally:
            call.log()

    return handle


async def _decoded_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _decoded(request)


def _client_streaming(
    method: str, gate: Gate | None, metrics: Metrics | None, behaviour: Callable[..., Any]
) -> Callable[..., Awaitable[Any]]:
    """A client-streaming method (an upload): admitted before its first message is read."""

    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = _Call(method, context, gate, metrics)
        try:
            await call.admit()
            response = await behaviour(_decoded_stream(requests), context)
            await call.send_headers()
            return response
        except Exception as error:
            await call.fail(error)
        finally:
            call.log()

    return handle


def _streaming(
    method: str, gate: Gate | None, metrics: Metrics | None, behaviour: Callable[..., Any]
) -> Callable[..., AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        call = _Call(method, context, gate, metrics)
        try:
            await call.admit()
            result = behaviour(_decoded(request), context)
            if inspect.isasyncgen(result):
                async for item in result:
                    await call.send_headers()
                    yield item
            else:
                # Handlers that write with `context.write` return a coroutine instead.
                await call.send_headers()
                await result
        except Exception as error:
            await call.fail(error)
        finally:
            call.log()

    return handle
