"""Cursor pagination over gRPC, on a server of its own so the list holds only this module's data."""

from __future__ import annotations

import pytest

from sovereign_client import AsyncSovereignClient

pytestmark = pytest.mark.grpc


@pytest.fixture(scope="module")
async def assistant_ids(client: AsyncSovereignClient) -> list[str]:
    # Created within the same second, so order rests on the tie-breaker, not on timestamps.
    return [(await client.assistants.create(model="m", name=f"a{index}")).id for index in range(25)]


async def test_default_list_is_twenty_newest_first(client: AsyncSovereignClient, assistant_ids: list[str]) -> None:
    page = await client.assistants.list()
    assert page.object == "list"
    assert [assistant.id for assistant in page.data] == assistant_ids[::-1][:20]
    assert page.first_id.string_value == assistant_ids[-1]
    assert page.last_id.string_value == assistant_ids[5]
    assert page.has_more is True


async def test_walking_pages_with_after_visits_each_assistant_once(
    client: AsyncSovereignClient, assistant_ids: list[str]
) -> None:
    assert [assistant.id async for assistant in client.assistants.iterate(limit=4, order="asc")] == assistant_ids


async def test_before_returns_the_items_just_before_the_cursor(
    client: AsyncSovereignClient, assistant_ids: list[str]
) -> None:
    page = await client.assistants.list(order="asc", before=assistant_ids[10], limit=3)
    assert [assistant.id for assistant in page.data] == assistant_ids[7:10]
    assert page.has_more is True


async def test_last_page_has_no_more(client: AsyncSovereignClient, assistant_ids: list[str]) -> None:
    page = await client.assistants.list(order="asc", after=assistant_ids[-3], limit=5)
    assert [assistant.id for assistant in page.data] == assistant_ids[-2:]
    assert page.has_more is False


async def test_empty_page_has_null_first_and_last_ids(client: AsyncSovereignClient, assistant_ids: list[str]) -> None:
    page = await client.assistants.list(order="asc", after=assistant_ids[-1])
    assert list(page.data) == []
    assert page.first_id.WhichOneof("kind") == "null_value"
    assert page.last_id.WhichOneof("kind") == "null_value"
