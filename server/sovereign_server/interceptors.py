"""Cross-cutting concerns of every call, in one interceptor: a structured log line per call, and
the mapping of domain errors to gRPC status."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

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
            return await behaviour(request, context)
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
            code = api_error.status
            await _abort(context, api_error)
        finally:
            _log(method, code, started)

    return handle
