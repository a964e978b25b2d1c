"""REST API bearer tokens: created, looked up by hash, listed and revoked.

A token is shown once, at creation; the table keeps only its SHA-256 hash. Functions take the
store's engine so that the API and the CLI share them without growing `Store`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import OperationalError

from conveyor.core.errors import ConveyorError, InvalidOption, StoreUnavailable
from conveyor.core.store.tables import api_tokens

#: What a token may do: `submit` jobs, `read` jobs and queues, `admin` everything.
SCOPES = ("submit", "read", "admin")
#: Every token starts with this, so that secret scanners and people can recognise one.
TOKEN_PREFIX = "cvy_"


class TokenNotFound(ConveyorError):
    """No active token has that id or name."""

    code = "not_found"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's record (never the token itself)."""

    id: str
    name: str
    scopes: frozenset[str]
    tenant: str | None
    created_at: float
    revoked_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "tenant": self.tenant,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Scopes from names (each may be comma-separated); raises InvalidOption on an unknown one."""
    names = {part.strip() for item in scopes for part in item.split(",") if part.strip()}
    unknown = names - set(SCOPES)
    if unknown:
        raise InvalidOption(
            f"unknown scope(s) {', '.join(sorted(unknown))} (known: {', '.join(SCOPES)})"
        )
    if not names:
        raise InvalidOption(f"a token needs at least one scope ({', '.join(SCOPES)})")
    return frozenset(names)


def create_token(
    engine: Engine, name: str, scopes: Iterable[str], tenant: str | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns its record and the token text (shown this once only)."""
    if not name.strip():
        raise InvalidOption("a token needs a name")
    record = ApiToken(
        id=secrets.token_hex(6),
        name=name.strip(),
        scopes=parse_scopes(scopes),
        tenant=tenant or None,
        created_at=time.time(),
    )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with _reachable(), engine.begin() as conn:
        conn.execute(
            api_tokens.insert().values(
                id=record.id,
                token_hash=hash_token(token),
                name=record.name,
                scopes=",".join(sorted(record.scopes)),
                tenant=record.tenant,
                created_at=record.created_at,
            )
        )
    return record, token


def find_token(engine: Engine, token: str) -> ApiToken | None:
    """The active token with this text, or None."""
    with _reachable(), engine.connect() as conn:
        row = conn.execute(
            select(api_tokens).where(
                api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
            )
        ).first()
    return None if row is None else _record(row)


def any_active(engine: Engine) -> bool:
    """Whether at least one token is active (the API then requires one on every call)."""
    with _reachable(), engine.connect() as conn:
        found = conn.execute(
            select(api_tokens.c.id).where(api_tokens.c.revoked_at.is_(None)).limit(1)
        ).first()
    return found is not None


def list_tokens(engine: Engine, include_revoked: bool = False) -> list[ApiToken]:
    query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    with _reachable(), engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def revoke_token(engine: Engine, id_or_name: str) -> list[ApiToken]:
    """Revoke the active token with this id, or every active token with this name."""
    with _reachable(), engine.begin() as conn:
        rows = conn.execute(
            select(api_tokens).where(
                or_(api_tokens.c.id == id_or_name, api_tokens.c.name == id_or_name),
                api_tokens.c.revoked_at.is_(None),
            )
        ).all()
        if not rows:
            raise TokenNotFound(f"no active token with id or name {id_or_name!r}")
        now = time.time()
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id.in_([row.id for row in rows]))
            .values(revoked_at=now)
        )
    return [_record(row, revoked_at=now) for row in rows]


def _record(row: Any, revoked_at: float | None = None) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes.split(",")),
        tenant=row.tenant,
        created_at=row.created_at,
        revoked_at=revoked_at if revoked_at is not None else row.revoked_at,
    )


@contextmanager
def _reachable() -> Iterator[None]:
    """Turns a lost database connection into StoreUnavailable (the API answers 503)."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()
        raise StoreUnavailable(
            f"cannot reach the database: {reason[0] if reason else 'unknown error'}"
        ) from None
