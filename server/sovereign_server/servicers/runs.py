from __future__ import annotations

from sovereign_assistant.v1 import run_service_pb2_grpc


class RunServicer(run_service_pb2_grpc.RunServiceServicer):
    """Runs are declared in the contract; until they are served every method answers UNIMPLEMENTED
    (the generated base class does exactly that)."""
