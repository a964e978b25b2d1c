"""Where messages go: SMTP (plain, implicit TLS or STARTTLS, with auth) or a folder of .eml files.

A worker process keeps one small pool of SMTP connections per URL (one connection unless the
URL says `?pool=N`) and reuses it across jobs; each connection belongs to one thread, which
performs the deliveries that jobs hand to the pool. Replies map onto Conveyor's vocabulary:
4xx and connection failures are retryable, 5xx and refused recipients permanent, and a reply
lost after the whole message was handed over is an uncertain effect (it may have been
delivered).
"""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from conveyor import PermanentError, RetryableError
from conveyor.core.errors import UncertainEffect

T = TypeVar("T")

SMTP_SCHEMES = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}
DEFAULT_TIMEOUT = 30.0
#: A thread waits this long for a pooled connection before giving the job back as retryable.
POOL_WAIT_SECONDS = 300.0


class RecipientRefused(PermanentError):
    """The server refused one recipient for good (5xx to RCPT TO); others may still be sent."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """A parsed `smtp://`, `smtps://` or `smtp+starttls://` URL."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    pool: int = 1

    @property
    def where(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://user:pass@host:port?timeout=30&pool=1` (user and password percent-encoded)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SMTP_SCHEMES or not parts.hostname:
        raise PermanentError(
            f"invalid SMTP URL {_redact(url)!r}: use smtp://, smtps://, smtp+starttls://host:port "
            "or file://dir"
        )
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(params) - {"timeout", "pool"}
    if unknown:
        raise PermanentError(f"SMTP URL: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        timeout = float(params.get("timeout", DEFAULT_TIMEOUT))
        pool = int(params.get("pool", 1))
        port = parts.port or SMTP_SCHEMES[scheme]
    except ValueError as exc:
        raise PermanentError(f"invalid SMTP URL {_redact(url)!r}: {exc}") from None
    if timeout <= 0 or not 1 <= pool <= 64:
        raise PermanentError("SMTP URL: timeout must be positive and pool between 1 and 64")
    return SmtpConfig(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
        pool=pool,
    )


def _redact(url: str) -> str:
    return re.sub(r"//([^/@]*):[^/@]*@", r"//\1:***@", url)


class Transport(ABC):
    """Delivers messages, one envelope recipient at a time."""

    @abstractmethod
    def run(self, work: Callable[[Session], T]) -> T:
        """Call `work(session)` where it may use a connection, and return what it returns.

        SMTP runs it on the thread that owns a pooled connection, one call at a time per
        connection, so everything `work` does (ledger writes included) is serialised with
        that connection's sends.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections (idempotent)."""


class Session(ABC):
    @abstractmethod
    def send(self, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        """Hand `data` over for `recipient`; raises Retryable/Permanent/UncertainEffect."""


# --- file://dir -----------------------------------------------------------------------------


class FileTransport(Transport, Session):
    """Writes each delivery as `<message-id>-<recipient hash>.eml`: a re-run overwrites."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def run(self, work: Callable[[Session], T]) -> T:
        return work(self)

    def close(self) -> None:
        pass  # every write is complete when send returns

    def send(self, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", message_id.strip("<>"))[:150]
        digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:12]
        target = self.directory / f"{stem}-{digest}.eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_bytes(data)
            partial.replace(target)
        except OSError as exc:
            raise RetryableError(f"cannot write to the outbox {self.directory}: {exc}") from None


def outbox_path(url: str) -> Path:
    """`file://./outbox` -> ./outbox, `file:///var/mail` -> /var/mail."""
    return Path(url[len("file://") :] or ".").expanduser()


# --- SMTP -----------------------------------------------------------------------------------


class SmtpTransport(Transport):
    """A per-process pool of `config.pool` SMTP connections, each owned by one thread.

    Jobs hand their deliveries to the pool's threads rather than borrowing a connection
    under a lock: a busy connection then works through its backlog back to back, without a
    thread handoff between two messages.
    """

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._executor = ThreadPoolExecutor(config.pool, thread_name_prefix="conveyor-smtp")
        self._local = threading.local()
        self._connections: list[SmtpConnection] = []
        self._lock = threading.Lock()

    def run(self, work: Callable[[Session], T]) -> T:
        try:
            future = self._executor.submit(self._on_connection, work)
        except RuntimeError:  # closed while this job was starting
            raise RetryableError("the SMTP connection pool was closed") from None
        try:
            return future.result(timeout=POOL_WAIT_SECONDS)
        except FutureTimeout:
            future.cancel()
            raise RetryableError(
                f"every SMTP connection to {self.config.where} stayed busy for "
                f"{POOL_WAIT_SECONDS:g}s"
            ) from None

    def _on_connection(self, work: Callable[[Session], T]) -> T:
        connection: SmtpConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = SmtpConnection(self.config)
            with self._lock:
                self._connections.append(connection)
        return work(connection)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()


class SmtpConnection(Session):
    """One SMTP connection, opened lazily and re-opened after a failure."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.client: smtplib.SMTP | None = None
        self.connects = 0

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        try:
            client: smtplib.SMTP
            if cfg.scheme == "smtps":
                client = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            try:
                client.ehlo()
                if cfg.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                if cfg.username:
                    client.login(cfg.username, cfg.password or "")
            except BaseException:
                client.close()
                raise
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"TLS certificate of {cfg.where} refused: {exc}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"{cfg.where} does not support {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(
                f"{cfg.where} refused the session", exc.smtp_code, exc.smtp_error
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableError(f"cannot connect to SMTP server {cfg.where}: {exc}") from None
        self.connects += 1
        self.client = client
        return client

    def send(self, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        reused = self.client is not None
        client = self.client or self._connect()
        try:
            code, reply = client.mail(sender)
            if reused and code == 421:
                raise smtplib.SMTPServerDisconnected("421 on a reused connection")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            if not reused:
                where = self.config.where
                raise RetryableError(f"SMTP connection to {where} lost: {exc}") from None
            # A pooled connection the server closed while idle: nothing was sent yet, retry once.
            client = self._connect()
            code, reply = self._command(client.mail, sender)
        self._check(client, code, reply, f"sender {sender} refused")
        code, reply = self._command(client.rcpt, recipient)
        self._check(
            client, code, reply, f"recipient {recipient} refused", (250, 251), RecipientRefused
        )
        code, reply = self._command(client.docmd, "DATA")
        self._check(client, code, reply, "DATA refused", ok=(354,))
        self._transfer(client, data, recipient, message_id)

    def _transfer(self, client: smtplib.SMTP, data: bytes, recipient: str, message_id: str) -> None:
        payload = re.sub(rb"(?m)^\.", b"..", data)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        self._command(client.send, payload + b".\r\n")
        try:
            code, reply = client.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            # The whole message is with the server; only its answer was lost.
            raise UncertainEffect(
                f"no answer after sending message {message_id} to {recipient}: {exc}"
            ) from None
        self._check(client, code, reply, f"message to {recipient} refused")

    def _command(self, call: object, *args: object) -> tuple[int, bytes]:
        try:
            result = call(*args)  # type: ignore[operator]
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise RetryableError(f"SMTP connection to {self.config.where} lost: {exc}") from None
        return result if isinstance(result, tuple) else (0, b"")

    def _check(
        self,
        client: smtplib.SMTP,
        code: int,
        reply: bytes,
        what: str,
        ok: tuple[int, ...] = (250,),
        permanent: type[PermanentError] = PermanentError,
    ) -> None:
        if code in ok:
            return
        if code == 421 or code < 0:
            self._drop()
        else:
            try:
                client.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        raise _reply_error(what, code, reply, permanent)


def _reply_error(
    what: str, code: int, reply: bytes | str, permanent: type[PermanentError] = PermanentError
) -> PermanentError | RetryableError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    message = f"{what}: {code} {' '.join(text.split())}"
    if 400 <= code < 500 or code < 0:
        return RetryableError(message)
    return permanent(message)


# --- the per-process registry ---------------------------------------------------------------

_transports: dict[str, Transport] = {}
_registry_lock = threading.Lock()


def transport_for(url: str) -> Transport:
    """This process's transport for `url`, created on first use and then reused."""
    transport = _transports.get(url)
    if transport is not None:
        return transport
    with _registry_lock:
        transport = _transports.get(url)
        if transport is None:
            if url.startswith("file://"):
                transport = FileTransport(outbox_path(url))
            else:
                transport = SmtpTransport(parse_smtp_url(url))
            _transports[url] = transport
    return transport


def close_transports() -> None:
    """Close every pooled connection (worker shutdown, tests)."""
    with _registry_lock:
        transports = list(_transports.values())
        _transports.clear()
    for transport in transports:
        transport.close()


def _forget_after_fork() -> None:
    # Sockets inherited from the parent belong to the parent's sessions: never speak on them.
    _transports.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
