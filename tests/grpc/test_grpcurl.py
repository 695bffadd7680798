"""grpcurl, the command-line gRPC client, against a real server through server reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerThread, merged_deltas, reply_events

pytestmark = pytest.mark.grpc

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"


def run_grpcurl(server: ServerThread, *verb: str, data: object = None) -> subprocess.CompletedProcess[str]:
    """Runs `grpcurl -plaintext [-d DATA] ADDRESS VERB...`."""
    flags = ["-d", json.dumps(data)] if data is not None else []
    return subprocess.run(
        [GRPCURL, "-plaintext", *flags, f"127.0.0.1:{server.port}", *verb],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def grpcurl(server: ServerThread, *verb: str, data: object = None) -> str:
    """What a successful grpcurl call printed."""
    result = run_grpcurl(server, *verb, data=data)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_list_shows_every_service_through_reflection(grpc_server: ServerThread) -> None:
    services = grpcurl(grpc_server, "list").split()
    assert {
        "sovereign_assistant.v1.AssistantService",
        "sovereign_assistant.v1.ThreadService",
        "sovereign_assistant.v1.RunService",
        "grpc.health.v1.Health",
    } <= set(services)


def test_describe_shows_a_message(grpc_server: ServerThread) -> None:
    description = grpcurl(grpc_server, "describe", "sovereign_assistant.v1.Assistant")
    assert "message Assistant {" in description
    assert "uint32 created_at = 3;" in description


def test_a_call_creates_and_returns_an_assistant(grpc_server: ServerThread) -> None:
    output = grpcurl(
        grpc_server,
        "sovereign_assistant.v1.AssistantService/CreateAssistant",
        data={"model": "builtin", "name": "from grpcurl"},
    )
    assistant = json.loads(output)
    assert assistant["id"].startswith("asst_")
    assert assistant["name"] == "from grpcurl"


def test_metadata_is_a_json_object_and_its_values_are_checked(grpc_server: ServerThread) -> None:
    method = "sovereign_assistant.v1.AssistantService/CreateAssistant"
    assistant = json.loads(grpcurl(grpc_server, method, data={"model": "builtin", "metadata": {"team": "ta"}}))
    assert assistant["metadata"] == {"team": "ta"}
    rejected = run_grpcurl(grpc_server, method, data={"model": "builtin", "metadata": {"team": {}}})
    assert rejected.returncode != 0
    assert "Code: InvalidArgument" in rejected.stderr
    assert "Invalid type for 'metadata.team'" in rejected.stderr


def test_health_check_says_serving(grpc_server: ServerThread) -> None:
    assert json.loads(grpcurl(grpc_server, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}


def json_messages(output: str) -> list[dict[str, Any]]:
    """The JSON objects grpcurl prints one after another for a streaming call."""
    decoder = json.JSONDecoder()
    messages = []
    rest = output.strip()
    while rest:
        message, end = decoder.raw_decode(rest)
        messages.append(message)
        rest = rest[end:].lstrip()
    return messages


def test_a_server_streaming_call_prints_each_run_event(grpc_server: ServerThread) -> None:
    assistant = json.loads(
        grpcurl(grpc_server, "sovereign_assistant.v1.AssistantService/CreateAssistant", data={"model": "builtin"})
    )
    thread = json.loads(
        grpcurl(
            grpc_server,
            "sovereign_assistant.v1.ThreadService/CreateThread",
            data={"messages": [{"role": "user", "content": "Hello grpcurl"}]},
        )
    )
    output = grpcurl(
        grpc_server,
        "sovereign_assistant.v1.RunService/CreateRunEvents",
        data={"thread_id": thread["id"], "assistant_id": assistant["id"]},
    )
    messages = json_messages(output)
    assert merged_deltas([message["event"] for message in messages]) == reply_events()
    deltas = [message["message_delta"] for message in messages if message["event"] == "thread.message.delta"]
    assert "".join(delta["delta"]["content"][0]["text"]["value"] for delta in deltas) == "You said: Hello grpcurl"
