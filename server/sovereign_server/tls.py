"""The service's TLS certificate and key: read and checked once at start-up, so that a wrong file
fails with a clear message instead of a handshake error later, and the names the certificate was
issued for, which the gateway expects when it reaches the gRPC server over TLS."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["ServerCertificate", "TlsError", "is_ip_address", "load_certificate"]


class TlsError(ValueError):
    """A certificate or key that cannot serve: unreadable, not PEM, mismatched, or naming no host."""


@dataclass(frozen=True)
class ServerCertificate:
    """A PEM certificate chain (the server's certificate first) and its private key."""

    cert_file: Path
    key_file: Path
    chain_pem: bytes
    key_pem: bytes
    # The subject alternative names of the server's certificate, in their order.
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]

    @property
    def server_name(self) -> str:
        """The name a client expects: the first DNS name, else the first IP address."""
        return (*self.dns_names, *self.ip_addresses)[0]


def load_certificate(cert_file: str | Path, key_file: str | Path) -> ServerCertificate:
    """Reads and checks a certificate chain and its key; raises `TlsError` saying what is wrong."""
    cert_path, key_path = Path(cert_file), Path(key_file)
    chain_pem, key_pem = _read(cert_path, "certificate"), _read(key_path, "private key")
    try:
        certificate = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError:
        raise TlsError(f"{cert_path} holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        # TypeError: the key is encrypted; nobody could type its passphrase for a server.
        raise TlsError(f"{key_path} holds no unencrypted PEM private key") from None
    if key.public_key() != certificate.public_key():
        raise TlsError(f"the private key {key_path} does not belong to the certificate {cert_path}")
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    dns_names = tuple(names.get_values_for_type(x509.DNSName))
    ip_addresses = tuple(str(address) for address in names.get_values_for_type(x509.IPAddress))
    if not dns_names and not ip_addresses:
        # Clients (Go's, Python's, Envoy's) check subject alternative names only, never the common name.
        raise TlsError(f"{cert_path} names no host: it needs a subjectAltName (DNS or IP address)")
    return ServerCertificate(cert_path, key_path, chain_pem, key_pem, dns_names, ip_addresses)


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsError(f"cannot read the TLS {what} {path}: {error.strerror or error}") from None
