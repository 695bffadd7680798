"""The gateway in front of the real server: the `gateway` fixture works, and the server's errors
arrive as OpenAI's error bodies. (Resource-by-resource JSON tests live beside this module.)"""

from __future__ import annotations

import httpx
import pytest

from sovereign_server.gateway import Gateway

pytestmark = pytest.mark.envoy


async def test_health_and_not_found(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.origin, trust_env=False) as http:
        health = await http.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "SERVING"})
        missing = await http.get("/v1/assistants/asst_missing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert "x-openai-error" not in missing.headers
    assert "grpc-status" not in missing.headers
    assert missing.json() == {
        "error": {
            "message": "No assistant found with id 'asst_missing'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


async def test_resources_are_openai_json_with_numbers_and_nulls(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, trust_env=False) as http:
        created = await http.post("/assistants", json={"model": "builtin", "metadata": {"k": "v"}})
        assert created.status_code == 200
        assistant = created.json()
        assert type(assistant["created_at"]) is int
        assert (assistant["name"], assistant["instructions"], assistant["tools"]) == (None, None, [])
        thread = (await http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]})).json()
        assert set(thread) == {"id", "object", "created_at", "tool_resources", "metadata"}
        listing = (await http.get(f"/threads/{thread['id']}/messages", params={"limit": 1})).json()
        assert set(listing) == {"object", "data", "first_id", "last_id", "has_more"}
        assert (listing["object"], listing["has_more"]) == ("list", False)
        assert listing["first_id"] == listing["last_id"] == listing["data"][0]["id"]
        assert listing["data"][0]["content"] == [{"type": "text", "text": {"value": "hi", "annotations": []}}]
        empty = (await http.get(f"/threads/{thread['id']}/messages", params={"run_id": "run_x"})).json()
        assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
        deleted = await http.delete(f"/assistants/{assistant['id']}")
        assert deleted.json() == {"id": assistant["id"], "object": "assistant.deleted", "deleted": True}


async def test_validation_error_is_400_with_openai_body(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, trust_env=False) as http:
        response = await http.post("/assistants", json={"model": "builtin", "name": "x" * 300})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Invalid 'name': string too long. Expected a string with maximum length 256, "
            "but got a string with length 300 instead.",
            "type": "invalid_request_error",
            "param": "name",
            "code": "string_above_max_length",
        }
    }


async def test_oversized_and_malformed_bodies_store_nothing(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, trust_env=False, timeout=30) as http:
        before = (await http.get("/assistants", params={"limit": 100})).json()["data"]
        huge = await http.post("/assistants", json={"model": "builtin", "instructions": "x" * (5 * 1024 * 1024)})
        assert huge.status_code == 413
        assert huge.json()["error"]["type"] == "invalid_request_error"
        malformed = await http.post(
            "/assistants", content=b'{"model": "builtin",', headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        assert set(malformed.json()["error"]) == {"message", "type", "param", "code"}
        assert (await http.get("/assistants", params={"limit": 100})).json()["data"] == before
