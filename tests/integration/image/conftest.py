"""Real servers on loopback for the image workload: moto's S3 server (ThreadedMotoServer), a
small HTTP(S) server for https sources and redirects, and a stand-in S3 endpoint that answers
chosen error codes (throttling, 5xx, 403) so error mapping runs through real botocore."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from image_samples import WebServer

import conveyor
from conveyor.handlers.image import plugin as image_plugin
from conveyor.storage.s3 import s3_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.02)


# --- S3 (moto server mode) -------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real HTTP S3 endpoint on a free loopback port for the whole run."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_listening(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """boto3's own variables pointed at a loopback endpoint, nothing read from the host."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    aws_env(monkeypatch, moto_endpoint)
    return moto_endpoint


@pytest.fixture
def s3(s3_env: str) -> Any:
    """A boto3 client for setting up and reading back objects (the shared one: building a
    client costs most of a second)."""
    return s3_client()


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A fresh bucket per test, emptied and removed afterwards."""
    name = f"conveyor-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


# --- apps --------------------------------------------------------------------------------------


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    path = tmp_path / "storage"
    path.mkdir()
    return path


@pytest.fixture
def image_app(
    make_app: Callable[..., conveyor.Conveyor], fast_settings: dict[str, Any], storage_dir: Path
) -> Callable[..., conveyor.Conveyor]:
    """An app with only the image plugin, file storage in a temp dir, fast retries."""

    def build(**overrides: Any) -> conveyor.Conveyor:
        options: dict[str, Any] = {
            **fast_settings,
            "storage_url": f"file://{storage_dir}",
            "entry_points": False,
            "plugins": [image_plugin],
        }
        options.update(overrides)
        return make_app(**options)

    return build


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread


def _web_handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            web.requests.append((self.path, self.headers.get("Host", "")))
            if self.path in web.delays:
                time.sleep(web.delays[self.path])  # the server is slow, not the test
            status, headers, body = web.routes.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def web() -> Iterator[WebServer]:
    """A plain HTTP server on loopback."""
    port = free_port()
    state = WebServer(port=port, scheme="http")
    server = ThreadingHTTPServer(("127.0.0.1", port), _web_handler(state))
    _serve(server)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls_web(tmp_path: Path) -> Iterator[tuple[WebServer, ssl.SSLContext]]:
    """An HTTPS server on loopback with a fresh self-signed certificate for `localhost`, and a
    client context trusting exactly that certificate."""
    cert, key = _self_signed(tmp_path)
    port = free_port()
    state = WebServer(port=port, scheme="https")
    server = ThreadingHTTPServer(("127.0.0.1", port), _web_handler(state))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _serve(server)
    client = ssl.create_default_context(cafile=str(cert))
    yield state, client
    server.shutdown()
    server.server_close()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# --- a stand-in S3 endpoint answering errors --------------------------------------------------


@dataclass
class FaultyS3:
    """Answers every request with `status` and an S3 XML error `code`."""

    port: int
    status: int = 503
    code: str = "SlowDown"
    retry_after: str | None = None
    hits: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def faulty_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyS3]:
    port = free_port()
    state = FaultyS3(port=port)

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 so that botocore's "Expect: 100-continue" on uploads is answered at once.
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            state.hits += 1
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{state.code}</Code>'
                f"<Message>chosen by the test</Message></Error>"
            ).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/xml")
            if state.retry_after:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    _serve(server)
    aws_env(monkeypatch, state.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # let the test see the first answer
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def unreachable_s3(monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 pointed at a loopback port nothing listens on."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    aws_env(monkeypatch, endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return endpoint
