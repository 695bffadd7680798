"""Cross-cutting concerns of every call, in one interceptor: a structured log line per call, and
the one map of domain errors to gRPC status."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sovereign_server.errors import ApiError, ConflictError, InvalidRequestError, NotFoundError, ServerError
from sovereign_storage import ActiveRunError, InvalidCursorError
from sovereign_storage import NotFoundError as StoredNotFoundError

logger = logging.getLogger("sovereign.calls")

# Trailing metadata key carrying OpenAI's JSON error body; the gateway turns it into the HTTP body.
OPENAI_ERROR_METADATA_KEY = "x-openai-error"

# Each error class's status; the gateway maps these to OpenAI's HTTP statuses (400, 404, 500).
_STATUS: dict[type[ApiError], grpc.StatusCode] = {
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    ConflictError: grpc.StatusCode.FAILED_PRECONDITION,
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
    return _Status(converted.code, converted.details, (*converted.trailing_metadata, (OPENAI_ERROR_METADATA_KEY, body)))


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
    logger.exception("unexpected error", exc_info=error)
    return ServerError("The server had an error while processing your request.")


class CallInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # Client-streaming and bidirectional methods (reflection) pass through unlogged.
        return handler


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: ApiError) -> None:
    status = rpc_status_of(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _log(method: str, code: grpc.StatusCode, started: float) -> None:
    if logger.isEnabledFor(logging.INFO):
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        logger.info(json.dumps({"method": method, "status": code.name, "duration_ms": elapsed_ms}))


def _code_of(context: grpc.aio.ServicerContext[Any, Any], default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else default


def _unary(method: str, behaviour: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            code = _code_of(context, grpc.StatusCode.UNKNOWN)
            raise
        except Exception as error:
            api_error = as_api_error(error)
            code = status_code(api_error)
            await _abort(context, api_error)
        finally:
            _log(method, code, started)

    return handle


def _streaming(method: str, behaviour: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            result = behaviour(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:
                # Handlers that write with `context.write` return a coroutine instead.
                await result
        except grpc.aio.AbortError:
            code = _code_of(context, grpc.StatusCode.UNKNOWN)
            raise
        except Exception as error:
            api_error = as_api_error(error)
            code = status_code(api_error)
            await _abort(context, api_error)
        finally:
            _log(method, code, started)

    return handle
