"""Client interceptors that send `authorization: Bearer <key>` with every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import grpc


def _with_key(metadata: Any, api_key: str) -> list[tuple[str, str | bytes]]:
    return [*(metadata or ()), ("authorization", f"Bearer {api_key}")]


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class KeyInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(  # type: ignore[return-value]
            details.method,
            details.timeout,
            _with_key(details.metadata, self._api_key),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._details(details), request)


class _AsyncKey:
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*_with_key(details.metadata, self._api_key)),
            details.credentials,
            details.wait_for_ready,
        )


class _AsyncUnaryKeyInterceptor(_AsyncKey, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _AsyncStreamKeyInterceptor(_AsyncKey, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


def async_key_interceptors(api_key: str) -> list[grpc.aio.ClientInterceptor]:
    """The asyncio channel's interceptors: one object per kind of call, because grpc.aio files an
    interceptor under the first kind it implements only (one object for both would skip streams)."""
    return [_AsyncUnaryKeyInterceptor(api_key), _AsyncStreamKeyInterceptor(api_key)]
