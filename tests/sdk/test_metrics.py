"""Prometheus metrics of a real service: scraped over HTTP and parsed, as a Prometheus server would."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServiceProcess

pytestmark = pytest.mark.sdk


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples by name, then by their sorted labels."""
    response = httpx.get(url, trust_env=False)
    assert response.status_code == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for key, value in samples.get(name, {}).items() if wanted <= set(key))


def test_calls_runs_tokens_streams_and_the_database_are_measured(database: str) -> None:
    service = ServiceProcess(database)
    try:
        metrics_url = next(line.split()[-1] for line in service.banner.splitlines() if "metrics (Prometheus)" in line)
        envoy_url = next(line.split()[-1] for line in service.banner.splitlines() if "gateway statistics" in line)
        with OpenAI(base_url=service.base_url, api_key="sk-local", max_retries=0) as client:
            assistant = client.beta.assistants.create(model="builtin")
            with pytest.raises(openai.NotFoundError):
                client.beta.assistants.retrieve("asst_missing")
            run = client.beta.threads.create_and_run_poll(
                assistant_id=assistant.id,
                thread={"messages": [{"role": "user", "content": "count these words please"}]},
                poll_interval_ms=20,
            )
            assert run.usage is not None
            streamed = list(
                client.beta.threads.runs.create(thread_id=run.thread_id, assistant_id=assistant.id, stream=True)
            )
            assert streamed[-1].event == "thread.run.completed"
        samples = scrape(metrics_url)
        envoy = httpx.get(envoy_url, trust_env=False)
    finally:
        service.stop()

    create = "/sovereign_assistant.v1.AssistantService/CreateAssistant"
    assert total(samples, "sovereign_calls_total", method=create, code="OK") == 1
    get = "/sovereign_assistant.v1.AssistantService/GetAssistant"
    assert total(samples, "sovereign_calls_total", method=get, code="NOT_FOUND") == 1
    assert total(samples, "sovereign_call_duration_seconds_count", method=create) == 1
    assert total(samples, "sovereign_runs_total", status="completed") == 2
    assert total(samples, "sovereign_tokens_total", kind="prompt", model="builtin") >= run.usage.prompt_tokens
    assert total(samples, "sovereign_tokens_total", kind="completion") >= 2 * run.usage.completion_tokens
    assert total(samples, "sovereign_time_to_first_token_seconds_count", model="builtin", backend="builtin") == 2
    assert total(samples, "sovereign_time_between_tokens_seconds_count") >= 2
    assert total(samples, "sovereign_active_streams", transport="sse") == 0
    assert total(samples, "sovereign_db_transaction_seconds_count", kind="write") >= 3
    assert total(samples, "sovereign_db_transaction_seconds_count", kind="read") >= 1
    assert envoy.status_code == 200
    assert "envoy_http_downstream_rq_total" in envoy.text
