"""Creating, listing and revoking keys: the one implementation behind `sovereign keys` and the
AdminService."""

from __future__ import annotations

from sovereign_server.auth.keys import new_secret, secret_hash, visible_prefix
from sovereign_server.errors import InvalidRequestError
from sovereign_storage import ApiKeyRecord, KeyStore


def create_key(
    keys: KeyStore,
    project: str,
    *,
    name: str | None = None,
    admin: bool = False,
    rpm: int | None = None,
    tpm: int | None = None,
) -> tuple[ApiKeyRecord, str]:
    """A new key of `project` (created on first use) and its secret, which exists only here."""
    project = project.strip()
    if not project:
        raise InvalidRequestError(
            "Missing required parameter: 'project'.", param="project", code="missing_required_parameter"
        )
    for param, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None and limit < 1:
            raise InvalidRequestError(
                f"Invalid '{param}': expected a limit of at least 1 per minute, but got {limit}.",
                param=param,
                code="invalid_value",
            )
    secret = new_secret()
    record = keys.create_key(
        project, secret_hash(secret), visible_prefix(secret), name=name, admin=admin, rpm=rpm, tpm=tpm
    )
    return record, secret
