"""SMTPS and STARTTLS with a certificate made for the test, trusted through SSL_CERT_FILE."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WELCOME = {"to": "ann@example.test", "template": "welcome", "context": {"name": "Ann"}}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conveyor test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def tls_server(
    request: pytest.FixtureRequest, server_context: ssl.SSLContext, start_smtp: Callable[..., Any]
) -> Any:
    if request.param == "smtps":
        return start_smtp(scheme="smtps", ssl_context=server_context)
    return start_smtp(scheme="smtp+starttls", tls_context=server_context, require_starttls=True)


@pytest.mark.parametrize("tls_server", ["smtps", "smtp+starttls"], indirect=True)
def test_tls_delivery(make_app, fast_settings, tls_server, certificate, monkeypatch, drain) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    app = make_app(smtp_url=tls_server.url, **fast_settings)
    job = app.submit("send_email", WELCOME)
    (done,) = drain(app, job.id)
    assert done.status == "succeeded", done.error
    assert tls_server.sink.per_recipient() == {"ann@example.test": 1}


@pytest.mark.parametrize("tls_server", ["smtps", "smtp+starttls"], indirect=True)
def test_untrusted_certificate_is_permanent(make_app, fast_settings, tls_server, drain) -> None:
    app = make_app(smtp_url=tls_server.url, **fast_settings)
    job = app.submit("send_email", WELCOME)
    (done,) = drain(app, job.id)
    assert done.status == "dead"
    assert "certificate" in done.error
    assert tls_server.sink.deliveries == []


def test_plain_smtp_refused_when_starttls_is_required(
    make_app, fast_settings, server_context, start_smtp, drain
) -> None:
    server = start_smtp(tls_context=server_context, require_starttls=True)
    app = make_app(smtp_url=server.url, **fast_settings)
    job = app.submit("send_email", WELCOME)
    (done,) = drain(app, job.id)
    assert done.status == "dead"
    assert "530" in done.error
