"""Plain immutable values crossing the storage boundary; no database row ever leaves the package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# A thread has at most one run in an active status; no message may be added to it meanwhile.
ACTIVE_RUN_STATUSES: tuple[str, ...] = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_RUN_STATUSES: tuple[str, ...] = ("completed", "failed", "cancelled", "incomplete", "expired")


@dataclass(frozen=True)
class AssistantRecord:
    id: str
    created_at: int
    model: str
    name: str | None
    description: str | None
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_resources: dict[str, Any]
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    response_format: Any  # "auto", a dict, or None
    reasoning_effort: str | None


@dataclass(frozen=True)
class NewAssistant:
    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_resources: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = None
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class ThreadRecord:
    id: str
    created_at: int
    tool_resources: dict[str, Any]
    metadata: dict[str, str]


@dataclass(frozen=True)
class MessageRecord:
    id: str
    created_at: int
    thread_id: str
    status: str
    incomplete_details: dict[str, Any] | None
    completed_at: int | None
    incomplete_at: int | None
    role: str
    content: list[dict[str, Any]]  # OpenAI content parts
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]]
    metadata: dict[str, str]


@dataclass(frozen=True)
class NewMessage:
    """A message to store; `completed_at` is set by the repository when `status` is "completed"."""

    role: str
    content: list[dict[str, Any]]
    attachments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = "completed"
    assistant_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class RunRecord:
    id: str
    created_at: int
    thread_id: str
    assistant_id: str
    status: str
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    metadata: dict[str, str]
    required_action: dict[str, Any] | None
    last_error: dict[str, Any] | None
    expires_at: int | None
    started_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    incomplete_details: dict[str, Any] | None
    usage: dict[str, Any] | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: dict[str, Any] | None
    tool_choice: Any  # "none" | "auto" | "required" | dict | None
    parallel_tool_calls: bool | None
    response_format: Any  # "auto" | dict | None


@dataclass(frozen=True)
class NewRun:
    """A run to create; it starts "queued" and `instructions` are the effective ones."""

    assistant_id: str
    model: str
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: dict[str, Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool = True
    response_format: Any = None


@dataclass(frozen=True)
class RunStepRecord:
    id: str
    created_at: int
    run_id: str
    thread_id: str
    assistant_id: str
    type: str
    status: str
    step_details: dict[str, Any]
    last_error: dict[str, Any] | None
    expired_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    metadata: dict[str, str]
    usage: dict[str, Any] | None


@dataclass(frozen=True)
class NewStep:
    """A run step to create; `completed_at` is set by the repository when `status` is "completed"."""

    run_id: str
    thread_id: str
    assistant_id: str
    type: str  # "message_creation" | "tool_calls"
    step_details: dict[str, Any]
    status: str = "in_progress"


@dataclass(frozen=True)
class PageRequest:
    """OpenAI list parameters; `after`/`before` are ids of objects of the same list."""

    limit: int = 20
    order: str = "desc"
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
