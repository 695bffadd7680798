"""What an OpenAI-compatible model server tells about a model beyond chat completions: its context
window and how it counts tokens. Asked once per model by `probe`, which recognises the server by
the endpoints it answers:

- llama.cpp's `llama-server`: `GET /props` gives the window of one slot
  (`default_generation_settings.n_ctx`: `--ctx-size` divided among `--parallel` slots);
  `POST /tokenize` counts a text, `POST /apply-template` renders a whole request with the model's
  chat template, so a prompt is counted exactly as the server will read it.
- vLLM: `GET /v1/models` gives `max_model_len`; `POST /tokenize` counts a text, or a whole chat
  request with its template (a server that lists `max_model_len` but counts nothing gets estimates).
- Ollama: `POST /api/show` gives the model's `num_ctx` parameter when it sets one, else its trained
  context length capped at Ollama's default window; Ollama has no tokenizer endpoint, so counts
  are estimates.
- anything else (OpenAI, LM Studio, SGLang, ...): no window (the caller applies its default) and
  estimates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx2

from sovereign_server.engines.base import EngineError, GenerationRequest, Tokenizer
from sovereign_server.engines.tokens import DEFAULT_CONTEXT_WINDOW, IMAGE_TOKENS, EstimatingTokenizer

__all__ = ["ChatBody", "ModelFacts", "Unreachable", "probe", "server_root"]

# The chat-completions body of a request for a model name (without streaming options).
ChatBody: TypeAlias = Callable[[GenerationRequest, str], dict[str, Any]]

# Requests one tokenizer sends at once: a thread's first run counts each of its messages.
COUNT_CONCURRENCY = 8
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)", re.MULTILINE)


class Unreachable(Exception):
    """The server could not be reached: what it would have told is unknown, not absent."""


@dataclass(frozen=True)
class ModelFacts:
    """What the server told: `server` is its kind ("llama.cpp", "vllm", "ollama" or "unknown");
    `window` is None when it did not say."""

    server: str
    window: int | None
    tokenizer: Tokenizer


def server_root(base_url: str) -> str:
    """The server's own root, where llama.cpp and vLLM serve /tokenize: the base URL without `/v1`."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


async def probe(
    http: httpx2.AsyncClient, base_url: str, model: str, chat_body: ChatBody, *, image_tokens: int = IMAGE_TOKENS
) -> ModelFacts:
    """Asks the server at `base_url` about `model`; raises `Unreachable` if no answer came at all.
    `chat_body` renders a request as the server receives it, for counting a whole prompt; an image
    is counted as `image_tokens` (`Tokenizer.image_tokens`)."""
    root = server_root(base_url)
    props = await _json(http, "GET", f"{root}/props")
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    if isinstance(settings, dict) and isinstance(settings.get("n_ctx"), int):
        key = _key("llama.cpp", str(props.get("model_path", "")), str(props.get("bos_token", "")))
        tokenizer: Tokenizer = LlamaCppTokenizer(http, root, key, chat_body, model, image_tokens)
        return ModelFacts("llama.cpp", settings["n_ctx"], tokenizer)
    listing = await _json(http, "GET", f"{base_url.rstrip('/')}/models")
    entry = _model_entry(listing, model)
    if entry is not None and isinstance(entry.get("max_model_len"), int):
        served = str(entry.get("id", model))
        # Others list max_model_len too (SGLang): only a server that counts is trusted to.
        counted = await _json(http, "POST", f"{root}/tokenize", {"model": served, "prompt": "hi"})
        if not isinstance(counted, dict) or not isinstance(counted.get("count", counted.get("tokens")), int | list):
            return ModelFacts("openai-compatible", entry["max_model_len"], EstimatingTokenizer(image_tokens))
        key = _key("vllm", served, str(entry.get("root", "")))
        tokenizer = VllmTokenizer(http, root, key, chat_body, served, image_tokens)
        return ModelFacts("vllm", entry["max_model_len"], tokenizer)
    shown = await _json(http, "POST", f"{root}/api/show", {"model": model})
    if isinstance(shown, dict) and isinstance(shown.get("model_info"), dict):
        return ModelFacts("ollama", ollama_window(shown), EstimatingTokenizer(image_tokens))
    return ModelFacts("unknown", None, EstimatingTokenizer(image_tokens))


def ollama_window(shown: Mapping[str, Any]) -> int:
    """The window Ollama runs a model with: its `num_ctx` parameter, else the default (never more
    than the model was trained for)."""
    found = _NUM_CTX.search(str(shown.get("parameters") or ""))
    if found:
        return int(found.group(1))
    trained = [value for name, value in shown["model_info"].items() if name.endswith(".context_length")]
    return min([DEFAULT_CONTEXT_WINDOW, *(value for value in trained if isinstance(value, int))])


def _model_entry(listing: Any, model: str) -> dict[str, Any] | None:
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        return None
    entries = [entry for entry in data if isinstance(entry, dict)]
    for entry in entries:
        if model in (entry.get("id"), entry.get("root")):
            return entry
    # A server of one model serves it under whatever name it is asked for.
    return entries[0] if len(entries) == 1 else None


def _key(*parts: str) -> str:
    """A short name for a tokenization, kept beside every message counted with it."""
    return f"{parts[0]}:{hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]}"


async def _json(http: httpx2.AsyncClient, method: str, url: str, body: Any = None) -> Any:
    """The JSON the server answered, or None if it answered something else (a 404, HTML, ...)."""
    try:
        response = await http.request(method, url, json=body)
    except httpx2.TransportError as error:
        raise Unreachable(str(error)) from error
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


class _ServerTokenizer:
    """Counts texts with the server, a few requests at a time; failures are engine errors (the run
    fails as it would on the chat request itself)."""

    def __init__(
        self, http: httpx2.AsyncClient, root: str, key: str, chat_body: ChatBody, model: str, image_tokens: int
    ) -> None:
        self._http = http
        self._root = root
        self.key: str | None = key
        self.image_tokens = image_tokens
        self._chat_body = chat_body
        self._model = model
        self._slots = asyncio.Semaphore(COUNT_CONCURRENCY)

    async def count(self, texts: Sequence[str]) -> list[int]:
        return list(await asyncio.gather(*(self._count_one(text) for text in texts)))

    async def _count_one(self, text: str) -> int:
        async with self._slots:
            return _token_count(await self._post("/tokenize", self._text_body(text)))

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            response = await self._http.post(f"{self._root}{path}", json=body)
            response.raise_for_status()
            return response.json()
        except (httpx2.HTTPError, ValueError) as error:
            raise EngineError(f"The model server at {self._root} could not count tokens: {error}") from error

    def _text_body(self, text: str) -> dict[str, Any]:
        raise NotImplementedError


class LlamaCppTokenizer(_ServerTokenizer):
    def _text_body(self, text: str) -> dict[str, Any]:
        # Special-token text is parsed as the server parses a prompt.
        return {"content": text}

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        try:
            rendered = await self._post("/apply-template", self._chat_body(request, self._model))
            prompt = rendered["prompt"]
            # As the server tokenizes a chat prompt: the model's BOS added if it uses one.
            return _token_count(await self._post("/tokenize", {"content": prompt, "add_special": True}))
        except (EngineError, KeyError, TypeError):
            return None  # the chat request itself will tell what is wrong with it


class VllmTokenizer(_ServerTokenizer):
    def _text_body(self, text: str) -> dict[str, Any]:
        return {"model": self._model, "prompt": text, "add_special_tokens": False}

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        body = self._chat_body(request, self._model)
        body["add_generation_prompt"] = True
        try:
            return _token_count(await self._post("/tokenize", body))
        except (EngineError, KeyError, TypeError):
            return None


def _token_count(answer: Any) -> int:
    if isinstance(answer, dict):
        if isinstance(answer.get("count"), int):
            return int(answer["count"])
        if isinstance(answer.get("tokens"), list):
            return len(answer["tokens"])
    raise EngineError(f"A model server answered a tokenize request with {str(answer)[:200]!r}.")
