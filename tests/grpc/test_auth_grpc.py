"""Keys and projects over gRPC, with the typed client and grpcurl, against a real server whose
database holds keys: every call needs one, and one project never sees another's objects."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from sovereign_assistant.v1 import admin_service_pb2, admin_service_pb2_grpc
from sovereign_client import AsyncSovereignClient, AuthenticationError, NotFoundError, SovereignClient
from tests.conftest import Keys, ServerThread
from tests.grpc.test_grpcurl import GRPCURL
from tests.grpc.test_runs_grpc import PRICE_CALL_ID, PRICE_QUESTION, PRICE_TOOL

pytestmark = pytest.mark.grpc


@pytest.fixture(scope="module")
def server(keyed_server: tuple[ServerThread, Keys]) -> ServerThread:
    return keyed_server[0]


@pytest.fixture(scope="module")
def keys(keyed_server: tuple[ServerThread, Keys]) -> Keys:
    return keyed_server[1]


@pytest.fixture(scope="module")
def alpha(server: ServerThread, keys: Keys) -> Iterator[SovereignClient]:
    with SovereignClient(f"127.0.0.1:{server.port}", api_key=keys.alpha) as client:
        yield client


@pytest.fixture(scope="module")
def beta(server: ServerThread, keys: Keys) -> Iterator[SovereignClient]:
    with SovereignClient(f"127.0.0.1:{server.port}", api_key=keys.beta) as client:
        yield client


def admin_stub(server: ServerThread) -> tuple[grpc.Channel, admin_service_pb2_grpc.AdminServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return channel, admin_service_pb2_grpc.AdminServiceStub(channel)


def with_key(secret: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {secret}"),)


def test_calls_without_a_valid_key_are_unauthenticated(server: ServerThread, keys: Keys) -> None:
    for secret in (None, "sk-not-a-key-of-this-service", keys.revoked):
        with SovereignClient(f"127.0.0.1:{server.port}", api_key=secret) as client:
            with pytest.raises(AuthenticationError) as refused:
                client.assistants.list()
            assert refused.value.status == grpc.StatusCode.UNAUTHENTICATED
            assert refused.value.code == "invalid_api_key"


def test_health_and_reflection_stay_open(server: ServerThread) -> None:
    address = f"127.0.0.1:{server.port}"
    health = subprocess.run(
        [GRPCURL, "-plaintext", address, "grpc.health.v1.Health/Check"], capture_output=True, text=True, check=True
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}
    listed = subprocess.run([GRPCURL, "-plaintext", address, "list"], capture_output=True, text=True, check=True)
    assert "sovereign_assistant.v1.AdminService" in listed.stdout


def test_grpcurl_calls_with_the_key_in_a_header(server: ServerThread, keys: Keys) -> None:
    method = "sovereign_assistant.v1.AssistantService/CreateAssistant"
    command = [GRPCURL, "-plaintext", "-d", json.dumps({"model": "builtin"}), f"127.0.0.1:{server.port}", method]
    keyed = subprocess.run(
        [*command[:2], "-H", f"authorization: Bearer {keys.alpha}", *command[2:]], capture_output=True, text=True
    )
    assert keyed.returncode == 0, keyed.stderr
    assert json.loads(keyed.stdout)["id"].startswith("asst_")
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "Unauthenticated" in refused.stderr


def test_admin_keys_manage_keys_and_others_may_not(server: ServerThread, keys: Keys) -> None:
    channel, admin = admin_stub(server)
    with channel:
        with pytest.raises(grpc.RpcError) as denied:
            admin.ListKeys(admin_service_pb2.ListKeysRequest(), metadata=with_key(keys.alpha))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

        created = admin.CreateKey(
            admin_service_pb2.CreateKeyRequest(project="gamma", name="made over grpc", rpm=100),
            metadata=with_key(keys.admin),
        )
        assert created.secret.startswith("sk-")
        assert (created.key.project_name, created.key.name, created.key.rpm) == ("gamma", "made over grpc", 100)
        assert not created.key.HasField("tpm")
        listed = admin.ListKeys(admin_service_pb2.ListKeysRequest(), metadata=with_key(keys.admin)).data
        assert created.key.id in {key.id for key in listed}
        assert all(created.secret not in str(key) for key in listed)
        projects = admin.ListProjects(admin_service_pb2.ListProjectsRequest(), metadata=with_key(keys.admin)).data
        assert {"alpha", "beta", "gamma", "ops"} <= {project.name for project in projects}

        # The new key works at once, and stops working at once when revoked here.
        with SovereignClient(f"127.0.0.1:{server.port}", api_key=created.secret) as gamma:
            gamma.assistants.list()
            revoked = admin.RevokeKey(
                admin_service_pb2.RevokeKeyRequest(key_id=created.key.id), metadata=with_key(keys.admin)
            )
            assert revoked.HasField("revoked_at")
            with pytest.raises(AuthenticationError):
                gamma.assistants.list()
        with pytest.raises(grpc.RpcError) as missing:
            admin.RevokeKey(admin_service_pb2.RevokeKeyRequest(key_id="key_missing"), metadata=with_key(keys.admin))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_no_call_of_another_project_reaches_alphas_objects(alpha: SovereignClient, beta: SovereignClient) -> None:
    assistant = alpha.assistants.create(model="builtin", tools=[PRICE_TOOL])
    thread = alpha.threads.create(messages=[{"role": "user", "content": "hello"}])
    (message,) = alpha.threads.messages.list(thread.id).data
    done = alpha.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    (step, *_) = alpha.threads.runs.steps.list(done.id, thread_id=thread.id).data
    waiting_thread = alpha.threads.create(messages=[{"role": "user", "content": PRICE_QUESTION}])
    waiting = alpha.threads.runs.create_and_poll(thread_id=waiting_thread.id, assistant_id=assistant.id)
    assert waiting.status == "requires_action"
    beta_assistant = beta.assistants.create(model="builtin")
    beta_thread = beta.threads.create()

    attempts: dict[str, Callable[[], Any]] = {
        "GetAssistant": lambda: beta.assistants.retrieve(assistant.id),
        "ModifyAssistant": lambda: beta.assistants.update(assistant.id, name="stolen"),
        "DeleteAssistant": lambda: beta.assistants.delete(assistant.id),
        "GetThread": lambda: beta.threads.retrieve(thread.id),
        "ModifyThread": lambda: beta.threads.update(thread.id, metadata={"k": "v"}),
        "DeleteThread": lambda: beta.threads.delete(thread.id),
        "CreateMessage": lambda: beta.threads.messages.create(thread.id, role="user", content="x"),
        "ListMessages": lambda: beta.threads.messages.list(thread.id),
        "GetMessage": lambda: beta.threads.messages.retrieve(message.id, thread_id=thread.id),
        "ModifyMessage": lambda: beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"k": "v"}),
        "DeleteMessage": lambda: beta.threads.messages.delete(message.id, thread_id=thread.id),
        "CreateRun on its thread": lambda: beta.threads.runs.create(
            thread_id=thread.id, assistant_id=beta_assistant.id
        ),
        "CreateRun with its assistant": lambda: beta.threads.runs.create(
            thread_id=beta_thread.id, assistant_id=assistant.id
        ),
        "CreateThreadAndRun with its assistant": lambda: beta.threads.create_and_run(assistant_id=assistant.id),
        "ListRuns": lambda: beta.threads.runs.list(thread.id),
        "GetRun": lambda: beta.threads.runs.retrieve(done.id, thread_id=thread.id),
        "ModifyRun": lambda: beta.threads.runs.update(done.id, thread_id=thread.id, metadata={"k": "v"}),
        "CancelRun": lambda: beta.threads.runs.cancel(waiting.id, thread_id=waiting_thread.id),
        "SubmitToolOutputs": lambda: beta.threads.runs.submit_tool_outputs(
            waiting.id,
            thread_id=waiting_thread.id,
            tool_outputs=[{"tool_call_id": PRICE_CALL_ID, "output": "1"}],
        ),
        "ListRunSteps": lambda: beta.threads.runs.steps.list(done.id, thread_id=thread.id),
        "GetRunStep": lambda: beta.threads.runs.steps.retrieve(step.id, thread_id=thread.id, run_id=done.id),
    }
    leaked = []
    for name, attempt in attempts.items():
        try:
            attempt()
        except NotFoundError:
            continue
        leaked.append(name)
    assert leaked == []
    assert assistant.id not in {a.id for a in beta.assistants.list().data}

    # Alpha's objects are untouched.
    assert alpha.assistants.retrieve(assistant.id).name == assistant.name
    assert alpha.threads.retrieve(thread.id).metadata == {}
    assert [m.id for m in alpha.threads.messages.list(thread.id).data] != []
    assert alpha.threads.runs.retrieve(waiting.id, thread_id=waiting_thread.id).status == "requires_action"


async def test_the_async_client_sends_its_key_on_streaming_calls_too(server: ServerThread, keys: Keys) -> None:
    async with AsyncSovereignClient(f"127.0.0.1:{server.port}", api_key=keys.alpha) as client:
        assistant = await client.assistants.create(model="builtin")
        thread = await client.threads.create(messages=[{"role": "user", "content": "hello"}])
        events = [event.event async for event in client.threads.runs.stream(thread.id, assistant_id=assistant.id)]
    assert events[-1] == "done"
