"""The throughput section's floor: a bare `grpc.aio` server on uvloop, as ours runs, that answers
`CreateRunEvents` by replaying the very events our server streamed for one run, its text deltas on
the engine's clock (delta n due n delays after the first), and does nothing else: no database, no
run, no engine. Its runs/s beside ours, in the same cell shape and the same run of the benchmark,
is what the gRPC framework alone reaches on this machine, with its client on the same cores.

    .venv/bin/python tools/bench_floor.py --port P --delay SECONDS --events FILE

FILE holds the events, each a 4-byte big-endian length and a serialized `RunEvent`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import uvloop

from sovereign_assistant.v1 import run_pb2, run_service_pb2, run_service_pb2_grpc
from sovereign_server.runs.model import EventName

SERVICE = run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name


async def capture_events(
    stub: run_service_pb2_grpc.RunServiceAsyncStub, request: run_service_pb2.CreateRunRequest
) -> bytes:
    """One run's events from a real server, as the floor server reads them."""
    frames = bytearray()
    async for event in stub.CreateRunEvents(request):
        data = event.SerializeToString()
        frames += len(data).to_bytes(4, "big") + data
    return bytes(frames)


def read_events(frames: bytes) -> list[run_pb2.RunEvent]:
    events = []
    offset = 0
    while offset < len(frames):
        size = int.from_bytes(frames[offset : offset + 4], "big")
        events.append(run_pb2.RunEvent.FromString(frames[offset + 4 : offset + 4 + size]))
        offset += 4 + size
    return events


def replayed_runs(events: Sequence[run_pb2.RunEvent], delay: float) -> grpc.GenericRpcHandler:
    """`RunService` with one method, `CreateRunEvents`, streaming `events` whatever the request."""

    async def create_run_events(
        request: run_service_pb2.CreateRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[run_pb2.RunEvent]:
        loop = asyncio.get_running_loop()
        first: float | None = None
        deltas = 0
        for event in events:
            if event.event == EventName.MESSAGE_DELTA:
                if first is None:
                    first = loop.time()
                else:
                    deltas += 1
                    wait = first + deltas * delay - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
            yield event

    method = grpc.unary_stream_rpc_method_handler(
        create_run_events,
        request_deserializer=run_service_pb2.CreateRunRequest.FromString,
        response_serializer=run_pb2.RunEvent.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"CreateRunEvents": method})


async def serve(port: int, delay: float, events: list[run_pb2.RunEvent]) -> None:
    server = grpc.aio.server(handlers=[replayed_runs(events, delay)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"floor ready: gRPC 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, required=True, help="seconds between text deltas")
    parser.add_argument("--events", type=Path, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.port, args.delay, read_events(args.events.read_bytes())))


if __name__ == "__main__":
    main()
