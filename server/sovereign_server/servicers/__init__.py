"""One thin servicer per service: validate and convert (`convert`), store (`sovereign_storage`), convert back."""

from sovereign_server.servicers.admin import AdminServicer
from sovereign_server.servicers.assistants import AssistantServicer
from sovereign_server.servicers.conversations import ConversationServicer
from sovereign_server.servicers.responses import ResponseServicer
from sovereign_server.servicers.runs import RunServicer
from sovereign_server.servicers.threads import ThreadServicer

__all__ = [
    "AdminServicer",
    "AssistantServicer",
    "ConversationServicer",
    "ResponseServicer",
    "RunServicer",
    "ThreadServicer",
]
