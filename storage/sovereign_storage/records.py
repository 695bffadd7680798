"""Plain immutable values crossing the storage boundary; no database row ever leaves the package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .values import (
    ContentPart,
    IncompleteDetails,
    Item,
    ItemDetails,
    ItemRole,
    LastError,
    MessageStatus,
    ResponseStatus,
    RunStatus,
    StepDetails,
    StepStatus,
    StepType,
    SubmitToolOutputs,
    TruncationStrategy,
    Usage,
)

T = TypeVar("T")


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
    status: MessageStatus
    incomplete_details: IncompleteDetails | None
    completed_at: int | None
    incomplete_at: int | None
    role: ItemRole
    content: tuple[ContentPart, ...]
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]]
    metadata: dict[str, str]
    # Token counts of the content by tokenizer key (`Repository.save_token_counts`); not OpenAI's.
    token_counts: dict[str, int] | None = None
    # A function call or its output, for the items the Responses API adds; None for a message.
    item_details: ItemDetails | None = None


@dataclass(frozen=True)
class NewMessage:
    """A message to store; `completed_at` is set by the repository when `status` is "completed".
    An item of the Responses API comes with its own `id` (and `item_details` unless a message)."""

    role: ItemRole
    content: tuple[ContentPart, ...]
    attachments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    status: MessageStatus = MessageStatus.COMPLETED
    assistant_id: str | None = None
    run_id: str | None = None
    id: str | None = None
    item_details: ItemDetails | None = None


@dataclass(frozen=True)
class RunRecord:
    id: str
    created_at: int
    thread_id: str
    assistant_id: str
    status: RunStatus
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    metadata: dict[str, str]
    required_action: SubmitToolOutputs | None
    last_error: LastError | None
    expires_at: int | None
    started_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    incomplete_details: IncompleteDetails | None
    usage: Usage | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: TruncationStrategy | None
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
    truncation_strategy: TruncationStrategy = field(default_factory=TruncationStrategy)
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
    type: StepType
    status: StepStatus
    step_details: StepDetails
    last_error: LastError | None
    expired_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    metadata: dict[str, str]
    usage: Usage | None


@dataclass(frozen=True)
class NewStep:
    """A run step to create; `completed_at` is set by the repository when `status` is "completed"."""

    run_id: str
    thread_id: str
    assistant_id: str
    type: StepType
    step_details: StepDetails
    status: StepStatus = StepStatus.IN_PROGRESS


@dataclass(frozen=True)
class ResponseRecord:
    """A response of the Responses API. `input_items` are those its request gave (its context
    also holds the chain of `previous_response_id`, or the conversation's earlier items);
    `output_items` what the model produced. `prompt_id` is the assistant it took its settings from.
    A response with `store` false exists only in memory."""

    id: str
    created_at: int
    status: ResponseStatus
    background: bool
    store: bool
    model: str
    instructions: str | None
    input_items: tuple[Item, ...]
    output_items: tuple[Item, ...]
    previous_response_id: str | None
    conversation_id: str | None
    prompt_id: str | None
    tools: list[dict[str, Any]]
    tool_choice: Any  # "none" | "auto" | "required" | {"type": "function", "name": ...}
    parallel_tool_calls: bool
    temperature: float | None
    top_p: float | None
    text_format: dict[str, Any] | None
    max_output_tokens: int | None
    # "auto": the oldest of its context is left out to fit the model's window; "disabled": it fails instead.
    truncation: str
    metadata: dict[str, str]
    usage: Usage | None
    error: LastError | None
    incomplete_details: IncompleteDetails | None
    completed_at: int | None


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


@dataclass(frozen=True)
class Transition(Generic[T]):
    """The outcome of a compare-and-set status change: the object as it now is, and whether this
    change was applied (False: a concurrent change had moved it out of the allowed statuses)."""

    record: T
    applied: bool


@dataclass(frozen=True)
class ProjectRecord:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True)
class ApiKeyRecord:
    """A key as listed: its secret is never stored, only a hash and the first characters."""

    id: str
    project_id: str
    project_name: str
    name: str | None
    prefix: str
    admin: bool
    rpm: int | None
    tpm: int | None
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
