from __future__ import annotations

from asyncio import to_thread
from typing import Any

import grpc

from sovereign_assistant.v1 import admin_service_pb2, admin_service_pb2_grpc
from sovereign_server.auth import Gate
from sovereign_server.auth.admin import create_key
from sovereign_storage import ApiKeyRecord, KeyStore

Context = grpc.aio.ServicerContext[Any, Any]


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    """Keys and projects for admin keys (the gate lets only those through)."""

    def __init__(self, keys: KeyStore, gate: Gate) -> None:
        self._keys = keys
        self._gate = gate

    async def CreateKey(
        self, request: admin_service_pb2.CreateKeyRequest, context: Context
    ) -> admin_service_pb2.CreatedKey:
        record, secret = await to_thread(
            create_key,
            self._keys,
            request.project,
            name=request.name if request.HasField("name") else None,
            admin=request.admin,
            rpm=request.rpm if request.HasField("rpm") else None,
            tpm=request.tpm if request.HasField("tpm") else None,
        )
        self._gate.keys_changed()
        return admin_service_pb2.CreatedKey(key=_key_message(record), secret=secret)

    async def ListKeys(
        self, request: admin_service_pb2.ListKeysRequest, context: Context
    ) -> admin_service_pb2.ListKeysResponse:
        keys = await to_thread(self._keys.list_keys)
        return admin_service_pb2.ListKeysResponse(data=[_key_message(key) for key in keys])

    async def RevokeKey(
        self, request: admin_service_pb2.RevokeKeyRequest, context: Context
    ) -> admin_service_pb2.ApiKey:
        record = await to_thread(self._keys.revoke_key, request.key_id)
        self._gate.keys_changed()
        return _key_message(record)

    async def ListProjects(
        self, request: admin_service_pb2.ListProjectsRequest, context: Context
    ) -> admin_service_pb2.ListProjectsResponse:
        projects = await to_thread(self._keys.list_projects)
        return admin_service_pb2.ListProjectsResponse(
            data=[admin_service_pb2.Project(id=p.id, name=p.name, created_at=p.created_at) for p in projects]
        )


def _key_message(record: ApiKeyRecord) -> admin_service_pb2.ApiKey:
    message = admin_service_pb2.ApiKey(
        id=record.id,
        project_id=record.project_id,
        project_name=record.project_name,
        prefix=record.prefix,
        admin=record.admin,
        created_at=record.created_at,
    )
    for field in ("name", "rpm", "tpm", "last_used_at", "revoked_at"):
        value = getattr(record, field)
        if value is not None:
            setattr(message, field, value)
    return message
