"""Storage layer of Sovereign Assistant: Peewee models, migrations and a synchronous repository.

Independent of the transport: nothing here imports gRPC or protobuf.
"""

from .database import open_database, write_transaction
from .errors import ActiveRunError, InvalidCursorError, NotFoundError, StorageError
from .ids import new_id
from .migrations import LATEST_VERSION, migrate, schema_version
from .records import (
    AssistantRecord,
    MessageRecord,
    NewAssistant,
    NewMessage,
    NewRun,
    NewStep,
    Page,
    PageRequest,
    RunRecord,
    RunStepRecord,
    ThreadRecord,
    Transition,
)
from .repository import Repository
from .values import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    ContentPart,
    FunctionCall,
    ImageFileContent,
    ImageUrlContent,
    IncompleteDetails,
    LastError,
    MessageCreation,
    MessageStatus,
    RunStatus,
    StepDetails,
    StepStatus,
    SubmitToolOutputs,
    TextContent,
    ToolCalls,
    TruncationStrategy,
    Usage,
)

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "LATEST_VERSION",
    "TERMINAL_RUN_STATUSES",
    "ActiveRunError",
    "AssistantRecord",
    "ContentPart",
    "FunctionCall",
    "ImageFileContent",
    "ImageUrlContent",
    "IncompleteDetails",
    "InvalidCursorError",
    "LastError",
    "MessageCreation",
    "MessageRecord",
    "MessageStatus",
    "NewAssistant",
    "NewMessage",
    "NewRun",
    "NewStep",
    "NotFoundError",
    "Page",
    "PageRequest",
    "Repository",
    "RunRecord",
    "RunStatus",
    "RunStepRecord",
    "StepDetails",
    "StepStatus",
    "StorageError",
    "SubmitToolOutputs",
    "TextContent",
    "ThreadRecord",
    "ToolCalls",
    "Transition",
    "TruncationStrategy",
    "Usage",
    "migrate",
    "new_id",
    "open_database",
    "schema_version",
    "write_transaction",
]
