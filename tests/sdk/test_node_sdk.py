"""The official `openai` Node SDK (from the npm registry, pinned by tests/node/package-lock.json and
installed by `make test`) through a real Envoy: a response created, then streamed, then followed
by the SDK's stream helper; a conversation's items auto-paged; a 404 raised as the SDK's error."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sovereign_server.gateway import Gateway

pytestmark = pytest.mark.sdk

NODE_TESTS = Path(__file__).resolve().parent.parent / "node"


def run_node(script: str, *args: str) -> object:
    node = shutil.which("node")
    if node is None:
        pytest.fail("The Node SDK tests need Node.js (20 or later) on the PATH.", pytrace=False)
    if not (NODE_TESTS / "node_modules" / "openai").is_dir():
        pytest.fail(
            "The Node SDK is not installed: `make test` installs it (npm ci --prefix tests/node).", pytrace=False
        )
    result = subprocess.run(
        [node, str(NODE_TESTS / script), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_node_sdk_creates_and_streams_responses(gateway: Gateway) -> None:
    seen = run_node("responses.mjs", gateway.base_url)
    assert isinstance(seen, dict)
    assert seen["created"]["id"].startswith("resp_")
    assert (seen["created"]["status"], seen["created"]["output_text"]) == ("completed", "You said: from node")
    events = seen["events"]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    text = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    assert text == "You said: node stream"
    assert "".join(seen["helper"]["deltas"]) == "You said: node helper"
    assert (seen["helper"]["output_text"], seen["helper"]["status"]) == ("You said: node helper", "completed")
    assert seen["items"] == ["node conversation"]
    assert seen["notFound"] == {"status": 404, "name": "NotFoundError"}
