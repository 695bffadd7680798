from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI

from sovereign_server.gateway import Gateway


@pytest.fixture(scope="module")
def openai_client(gateway: Gateway) -> Iterator[OpenAI]:
    """The official SDK, unmodified, pointed at the gateway."""
    with OpenAI(base_url=gateway.base_url, api_key="sk-local", max_retries=0, timeout=20.0) as client:
        yield client
