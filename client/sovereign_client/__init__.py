"""A typed Python client for Sovereign Assistant over gRPC, sync and asyncio."""

from sovereign_client.client import AsyncSovereignClient, SovereignClient
from sovereign_client.errors import APIError, BadRequestError, InternalServerError, NotFoundError

__all__ = [
    "APIError",
    "AsyncSovereignClient",
    "BadRequestError",
    "InternalServerError",
    "NotFoundError",
    "SovereignClient",
]
