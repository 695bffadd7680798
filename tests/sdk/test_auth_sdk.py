"""Keys, projects, rate limits and request ids with the official `openai` SDK through a real Envoy,
against a server whose database holds keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from sovereign_server.gateway import Gateway, GatewayConfig
from tests.conftest import Keys, ServerThread
from tests.grpc.test_runs_grpc import PRICE_CALL_ID, PRICE_QUESTION, PRICE_TOOL

pytestmark = pytest.mark.sdk


@pytest.fixture(scope="module")
def keys(keyed_server: tuple[ServerThread, Keys]) -> Keys:
    return keyed_server[1]


@pytest.fixture(scope="module")
def keyed_gateway(keyed_server: tuple[ServerThread, Keys]) -> Iterator[Gateway]:
    with Gateway(GatewayConfig(grpc_port=keyed_server[0].port, http_port=0)) as gateway:
        yield gateway


def sdk(gateway: Gateway, api_key: str, **options: Any) -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=api_key, timeout=20.0, **{"max_retries": 0, **options})


@pytest.fixture(scope="module")
def alpha(keyed_gateway: Gateway, keys: Keys) -> Iterator[OpenAI]:
    with sdk(keyed_gateway, keys.alpha) as client:
        yield client


@pytest.fixture(scope="module")
def beta(keyed_gateway: Gateway, keys: Keys) -> Iterator[OpenAI]:
    with sdk(keyed_gateway, keys.beta) as client:
        yield client


def test_a_missing_unknown_or_revoked_key_is_a_401_with_openais_body(keyed_gateway: Gateway, keys: Keys) -> None:
    for secret in ("sk-made-up-key", keys.revoked):
        with sdk(keyed_gateway, secret) as client, pytest.raises(openai.AuthenticationError) as refused:
            client.beta.assistants.list()
        assert refused.value.status_code == 401
        assert refused.value.code == "invalid_api_key"
        assert refused.value.type == "invalid_request_error"
        assert secret not in refused.value.message
    bare = httpx.get(keyed_gateway.url("/v1/assistants"), trust_env=False)
    assert bare.status_code == 401
    assert bare.json()["error"]["code"] == "invalid_api_key"
    assert "didn't provide an API key" in bare.json()["error"]["message"]


def test_health_docs_and_the_openapi_document_need_no_key(keyed_gateway: Gateway) -> None:
    for path in ("/health", "/docs", "/openapi.json"):
        assert httpx.get(keyed_gateway.url(path), trust_env=False).status_code == 200, path


def test_the_project_header_must_name_the_keys_project(keyed_gateway: Gateway, keys: Keys) -> None:
    project = keys.records["alpha"]
    for named in ("alpha", project.project_id):
        with sdk(keyed_gateway, keys.alpha, project=named) as client:
            client.beta.assistants.list()
    with (
        sdk(keyed_gateway, keys.alpha, project="beta", organization="org-any") as client,
        pytest.raises(openai.AuthenticationError, match="OpenAI-Project") as refused,
    ):
        client.beta.assistants.list()
    assert refused.value.code == "invalid_project"


def test_every_response_carries_a_request_id(alpha: OpenAI, keyed_gateway: Gateway, keys: Keys) -> None:
    created = alpha.beta.assistants.with_raw_response.create(model="builtin")
    assert created.headers["x-request-id"]
    assert created.parse()._request_id == created.headers["x-request-id"]
    with pytest.raises(openai.NotFoundError) as missing:
        alpha.beta.assistants.retrieve("asst_missing")
    assert missing.value.request_id
    chosen = httpx.get(
        keyed_gateway.url("/v1/assistants"),
        headers={"authorization": f"Bearer {keys.alpha}", "x-request-id": "trace-me-42"},
        trust_env=False,
    )
    assert chosen.headers["x-request-id"] == "trace-me-42"


def test_no_json_route_of_another_project_reaches_alphas_objects(alpha: OpenAI, beta: OpenAI) -> None:
    assistant = alpha.beta.assistants.create(model="builtin", tools=[PRICE_TOOL])  # type: ignore[list-item]
    thread = alpha.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    message = alpha.beta.threads.messages.list(thread.id).data[0]
    done = alpha.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    step = alpha.beta.threads.runs.steps.list(done.id, thread_id=thread.id).data[0]
    waiting_thread = alpha.beta.threads.create(messages=[{"role": "user", "content": PRICE_QUESTION}])
    waiting = alpha.beta.threads.runs.create_and_poll(
        thread_id=waiting_thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert waiting.status == "requires_action"
    own_assistant = beta.beta.assistants.create(model="builtin")
    own_thread = beta.beta.threads.create()
    runs = beta.beta.threads.runs

    attempts: dict[str, Callable[[], Any]] = {
        "GET assistant": lambda: beta.beta.assistants.retrieve(assistant.id),
        "POST assistant": lambda: beta.beta.assistants.update(assistant.id, name="stolen"),
        "DELETE assistant": lambda: beta.beta.assistants.delete(assistant.id),
        "GET thread": lambda: beta.beta.threads.retrieve(thread.id),
        "POST thread": lambda: beta.beta.threads.update(thread.id, metadata={"k": "v"}),
        "DELETE thread": lambda: beta.beta.threads.delete(thread.id),
        "POST messages": lambda: beta.beta.threads.messages.create(thread.id, role="user", content="x"),
        "GET messages": lambda: beta.beta.threads.messages.list(thread.id),
        "GET message": lambda: beta.beta.threads.messages.retrieve(message.id, thread_id=thread.id),
        "POST message": lambda: beta.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={}),
        "DELETE message": lambda: beta.beta.threads.messages.delete(message.id, thread_id=thread.id),
        "POST runs on its thread": lambda: runs.create(thread_id=thread.id, assistant_id=own_assistant.id),
        "POST runs with its assistant": lambda: runs.create(thread_id=own_thread.id, assistant_id=assistant.id),
        "POST runs, streamed": lambda: list(
            runs.create(thread_id=thread.id, assistant_id=own_assistant.id, stream=True)
        ),
        "POST threads/runs with its assistant": lambda: beta.beta.threads.create_and_run(assistant_id=assistant.id),
        "GET runs": lambda: runs.list(thread.id),
        "GET run": lambda: runs.retrieve(done.id, thread_id=thread.id),
        "POST run": lambda: runs.update(done.id, thread_id=thread.id, metadata={"k": "v"}),
        "POST cancel": lambda: runs.cancel(waiting.id, thread_id=waiting_thread.id),
        "POST submit_tool_outputs": lambda: runs.submit_tool_outputs(
            waiting.id, thread_id=waiting_thread.id, tool_outputs=[{"tool_call_id": PRICE_CALL_ID, "output": "1"}]
        ),
        "GET steps": lambda: runs.steps.list(done.id, thread_id=thread.id),
        "GET step": lambda: runs.steps.retrieve(step.id, thread_id=thread.id, run_id=done.id),
    }
    leaked = []
    for name, attempt in attempts.items():
        try:
            attempt()
        except openai.NotFoundError:
            continue
        leaked.append(name)
    assert leaked == []
    assert assistant.id not in {a.id for a in beta.beta.assistants.list()}
    assert alpha.beta.assistants.retrieve(assistant.id).name is None
    assert alpha.beta.threads.runs.retrieve(waiting.id, thread_id=waiting_thread.id).status == "requires_action"
    assert message.id in {m.id for m in alpha.beta.threads.messages.list(thread.id)}


def spend(client: OpenAI, requests: int) -> None:
    for _ in range(requests):
        client.beta.assistants.list()


def test_over_its_requests_per_minute_a_key_gets_429_and_the_sdk_waits_as_told(
    keyed_gateway: Gateway, keys: Keys
) -> None:
    with sdk(keyed_gateway, keys.limited) as client:
        first = client.beta.assistants.with_raw_response.list()
        assert first.headers["x-ratelimit-limit-requests"] == "60"
        assert int(first.headers["x-ratelimit-remaining-requests"]) == 59
        assert first.headers["x-ratelimit-reset-requests"].endswith(("ms", "s"))
        # The bucket regains one request a second while these go out, so a few more may pass.
        with pytest.raises(openai.RateLimitError) as over:
            spend(client, 200)
    error = over.value
    assert (error.status_code, error.code, error.type) == (429, "rate_limit_exceeded", "requests")
    assert error.response.headers["retry-after"] == "1"
    assert int(error.response.headers["retry-after-ms"]) <= 1000
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    # With retries on, the SDK sleeps for retry-after and then gets through: a key kept at its
    # limit sees its calls retried, and none fails.
    with sdk(keyed_gateway, keys.limited, max_retries=3) as patient:
        retried = [patient.beta.assistants.with_raw_response.list().retries_taken for _ in range(70)]
    assert max(retried) >= 1


def test_a_key_over_its_tokens_per_minute_may_read_but_not_start_runs(keyed_gateway: Gateway, keys: Keys) -> None:
    with sdk(keyed_gateway, keys.thrifty) as client:
        assistant = client.beta.assistants.create(model="builtin")
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "spend more than five tokens on this answer"}]},
            poll_interval_ms=20,
        )
        assert run.status == "completed"
        assert run.usage is not None
        assert run.usage.total_tokens > 5
        read = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=run.thread_id)
        assert read.headers["x-ratelimit-remaining-tokens"] == "0"
        with pytest.raises(openai.RateLimitError) as over:
            client.beta.threads.runs.create(thread_id=run.thread_id, assistant_id=assistant.id)
    assert over.value.type == "tokens"
    assert "TPM" in over.value.message
