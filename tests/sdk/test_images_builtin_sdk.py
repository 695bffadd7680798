"""What reached the model, told by the built-in engine: its answer names each image of the last
user message (the official SDK through Envoy and our server)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from openai import OpenAI

from tests.images import png, png_url

pytestmark = pytest.mark.sdk

CHART = "https://example.com/chart.png"


def test_the_builtin_engine_names_the_images_that_reached_it(openai_client: OpenAI) -> None:
    assistant = openai_client.beta.assistants.create(model="builtin")
    content: Any = [
        {"type": "text", "text": "Compare these two"},
        {"type": "image_url", "image_url": {"url": CHART, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": png_url()}},
    ]
    run = openai_client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": content}]}, poll_interval_ms=50
    )
    assert run.status == "completed"
    reply = openai_client.beta.threads.messages.list(run.thread_id).data[0]
    digest = hashlib.sha256(png()).hexdigest()[:12]
    assert reply.content[0].text.value == (  # type: ignore[union-attr]
        "You said: Compare these two"
        f"\nImage 1: {CHART}, detail low"
        f"\nImage 2: image/png, {len(png())} bytes, sha256 {digest}"
    )
