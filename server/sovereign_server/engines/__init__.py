"""Generation engines, chosen by name from the server's configuration.

Engines are imported only when created, so that a backend's dependencies (an SDK, a model runtime) are
needed only by deployments that use it.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from sovereign_server.engines.base import (
    ChatMessage,
    Chunk,
    ContextOverflowError,
    Engine,
    EngineError,
    EngineErrorCode,
    Finish,
    FinishReason,
    FunctionTool,
    GenerationRequest,
    ImageDetail,
    ImagePart,
    MessagePart,
    Role,
    TextDelta,
    TextPart,
    Tokenizer,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "ChatMessage",
    "Chunk",
    "ContextOverflowError",
    "Engine",
    "EngineError",
    "EngineErrorCode",
    "Finish",
    "FinishReason",
    "FunctionTool",
    "GenerationRequest",
    "ImageDetail",
    "ImagePart",
    "MessagePart",
    "Role",
    "TextDelta",
    "TextPart",
    "Tokenizer",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "create_engine",
    "engine_names",
]

# Engine name -> "module:Class"; the class is called with the engine's options as keyword arguments.
_ENGINES: dict[str, str] = {
    "builtin": "sovereign_server.engines.builtin:BuiltinEngine",
    "openai": "sovereign_server.engines.openai_compat:engine_from_options",
    "local": "sovereign_server.engines.local:LocalEngine",
}


def engine_names() -> tuple[str, ...]:
    """The names `create_engine` accepts, sorted."""
    return tuple(sorted(_ENGINES))


def create_engine(name: str, **options: Any) -> Engine:
    """Import and build the engine called `name` with its `options`.

    Raises ValueError for an unknown name (the message lists the known ones), and TypeError for an
    option the engine does not take."""
    target = _ENGINES.get(name)
    if target is None:
        raise ValueError(f"Unknown engine {name!r}; known engines: {', '.join(engine_names())}.")
    module_name, _, class_name = target.partition(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return cast(Engine, engine_class(**options))
