"""Channels to the server: plaintext, or TLS verified against the system's roots or a CA of yours."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import grpc

CaFile = str | os.PathLike[str]


def _tls(
    tls: bool, ca_file: CaFile | None, root_certificates: bytes | None, server_name: str | None
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, str]]]:
    """Channel credentials (None: plaintext) and options. TLS is on when asked for or implied by a
    CA or a server name; without a CA, gRPC's bundled roots verify the server."""
    if ca_file is not None and root_certificates is not None:
        raise ValueError("give the CA as ca_file or as root_certificates, not both")
    if not (tls or ca_file is not None or root_certificates is not None or server_name is not None):
        return None, []
    if ca_file is not None:
        root_certificates = Path(ca_file).read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    # The name the certificate was issued for, when the target address is another (an IP, a tunnel).
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return credentials, options


def open_channel(
    target: str, *, tls: bool, ca_file: CaFile | None, root_certificates: bytes | None, server_name: str | None
) -> grpc.Channel:
    credentials, options = _tls(tls, ca_file, root_certificates, server_name)
    if credentials is None:
        return grpc.insecure_channel(target, options)
    return grpc.secure_channel(target, credentials, options)


def open_aio_channel(
    target: str,
    *,
    tls: bool,
    ca_file: CaFile | None,
    root_certificates: bytes | None,
    server_name: str | None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None,
) -> grpc.aio.Channel:
    credentials, options = _tls(tls, ca_file, root_certificates, server_name)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options, interceptors=interceptors)
