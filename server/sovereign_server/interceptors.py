"""Cross-cutting concerns of every call, in one interceptor: a structured log line per call, the
mapping of domain errors to gRPC status, and a 400 for request bytes that do not parse."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from sovereign_server.errors import ApiError, ConflictError, InvalidRequestError, NotFoundError, ServerError
from sovereign_storage import ActiveRunError, InvalidCursorError
from sovereign_storage import NotFoundError as StoredNotFoundError

logger = logging.getLogger("sovereign.calls")


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
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(method, handler.unary_stream),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # Client-streaming and bidirectional methods (reflection) pass through unlogged.
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


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: ApiError) -> None:
    status = error.to_rpc_status()
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
            return await behaviour(_decoded(request), context)
        except grpc.aio.AbortError:
            code = _code_of(context, grpc.StatusCode.UNKNOWN)
            raise
        except Exception as error:
            api_error = as_api_error(error)
            code = api_error.status
            await _abort(context, api_error)
        finally:
            _log(method, code, started)

    return handle


def _streaming(method: str, behaviour: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            result = behaviour(_decoded(request), context)
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
            code = api_error.status
            await _abort(context, api_error)
        finally:
            _log(method, code, started)

    return handle
