"""TLS settings, before anything listens: the certificate check, the flags and their variables,
and the gateway `sovereign serve` puts in front of a server that has a certificate."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign_server import ServerConfig
from sovereign_server.cli import build_parser, config_from_args, gateway_config
from sovereign_server.gateway import UpstreamTls
from sovereign_server.tls import TlsError, load_certificate
from tests.certificates import CertificateAuthority, self_signed

pytestmark = pytest.mark.unit


def serve_args(*flags: str) -> list[str]:
    return ["serve", *flags]


def test_a_certificate_is_read_with_the_names_it_was_issued_for(tmp_path: Path) -> None:
    files = self_signed(tmp_path, "api.example.test", "localhost", "10.0.0.7")
    certificate = load_certificate(files.cert, files.key)
    assert certificate.dns_names == ("api.example.test", "localhost")
    assert certificate.ip_addresses == ("10.0.0.7",)
    assert certificate.server_name == "api.example.test"
    address_only = self_signed(tmp_path / "ip", "127.0.0.1")
    assert load_certificate(address_only.cert, address_only.key).server_name == "127.0.0.1"


def test_wrong_certificate_files_are_refused_with_what_is_wrong(tmp_path: Path) -> None:
    files = self_signed(tmp_path / "a", "localhost")
    other = self_signed(tmp_path / "b", "localhost")
    issued = CertificateAuthority(tmp_path / "ca").issue("localhost")
    with pytest.raises(TlsError, match="does not belong to the certificate"):
        load_certificate(files.cert, other.key)
    with pytest.raises(TlsError, match="cannot read the TLS certificate"):
        load_certificate(tmp_path / "missing.crt", files.key)
    with pytest.raises(TlsError, match="holds no PEM certificate"):
        load_certificate(files.key, files.key)
    with pytest.raises(TlsError, match="no unencrypted PEM private key"):
        load_certificate(files.cert, files.cert)
    # A chain's first certificate is the server's: its key must match that one.
    chain = tmp_path / "chain.crt"
    chain.write_bytes(issued.cert.read_bytes() + files.cert.read_bytes())
    assert load_certificate(chain, issued.key).dns_names == ("localhost",)


def test_a_certificate_without_subject_alternative_names_is_refused(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    # The CA's own certificate has a common name only, which no modern client checks.
    key = tmp_path / "ca.key"
    with pytest.raises(TlsError, match="needs a subjectAltName"):
        load_certificate(authority.files.cert, key)


def test_tls_flags_and_variables_set_the_config_and_come_in_pairs() -> None:
    parser = build_parser()
    config = config_from_args(parser.parse_args(serve_args("--tls-cert", "c.pem", "--tls-key", "k.pem")), {})
    assert (config.tls_cert, config.tls_key) == ("c.pem", "k.pem")
    environ = {"SOVEREIGN_TLS_CERT": "env.crt", "SOVEREIGN_TLS_KEY": "env.key"}
    config = config_from_args(parser.parse_args(serve_args("--tls-key", "flag.key")), environ)
    assert (config.tls_cert, config.tls_key) == ("env.crt", "flag.key")
    assert config_from_args(parser.parse_args(serve_args()), {}).tls_cert is None
    with pytest.raises(SystemExit, match="both --tls-cert and --tls-key"):
        config_from_args(parser.parse_args(serve_args("--tls-cert", "c.pem")), {})


def test_serve_puts_envoy_over_tls_to_the_server_under_its_certificates_name(tmp_path: Path) -> None:
    files = self_signed(tmp_path, "api.example.test", "127.0.0.1")
    config = ServerConfig(tls_cert=str(files.cert), tls_key=str(files.key))
    gateway = gateway_config(config, 50051, load_certificate(files.cert, files.key))
    assert (gateway.tls_cert, gateway.tls_key) == (files.cert, files.key)
    assert gateway.upstream_tls == UpstreamTls(files.cert, "api.example.test")
    plain = gateway_config(ServerConfig(), 50051, None)
    assert (plain.tls_cert, plain.upstream_tls) == (None, None)
