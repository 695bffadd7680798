"""A typed Python client for Sovereign Assistant over gRPC, sync and asyncio."""

from sovereign_client.client import AsyncSovereignClient, SovereignClient
from sovereign_client.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)

__all__ = [
    "APIError",
    "AsyncSovereignClient",
    "AuthenticationError",
    "BadRequestError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "SovereignClient",
]
