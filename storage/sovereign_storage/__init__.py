"""Storage layer of Sovereign Assistant: Peewee models, migrations and a synchronous repository.

Independent of the transport: nothing here imports gRPC or protobuf.
"""

from .database import open_database, write_transaction
from .errors import ActiveRunError, InvalidCursorError, NotFoundError, StorageError
from .ids import new_id
from .migrations import LATEST_VERSION, migrate, schema_version
from .records import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
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
)
from .repository import Repository

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "LATEST_VERSION",
    "TERMINAL_RUN_STATUSES",
    "ActiveRunError",
    "AssistantRecord",
    "InvalidCursorError",
    "MessageRecord",
    "NewAssistant",
    "NewMessage",
    "NewRun",
    "NewStep",
    "NotFoundError",
    "Page",
    "PageRequest",
    "Repository",
    "RunRecord",
    "RunStepRecord",
    "StorageError",
    "ThreadRecord",
    "migrate",
    "new_id",
    "open_database",
    "schema_version",
    "write_transaction",
]
