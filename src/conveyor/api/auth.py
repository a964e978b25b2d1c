"""Bearer tokens: who is calling, with which scopes, for which tenant.

Scopes: `submit` (POST /jobs, /jobs/bulk), `read` (GET jobs, handlers, queues, workers,
batches), `admin` (cancel, retry, pause, resume; and every other scope). A token bound to a
tenant submits, sees and acts on that tenant's jobs only, and cannot act on whole queues.

Authentication is on when required by the server (`serve` on a non-loopback address), when
`CONVEYOR_ADMIN_TOKEN` is set, or when at least one token exists; otherwise (a fresh local
install) every call acts with every scope.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from conveyor.api.errors import ApiError
from conveyor.core.store import tokens

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor

ALL_SCOPES = frozenset(tokens.SCOPES)
CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer = HTTPBearer(
    auto_error=False, description="A Conveyor API token (`conveyor tokens create`)."
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a token's name, its scopes and the tenant it is bound to (if any)."""

    name: str
    scopes: frozenset[str]
    tenant: str | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def tenant_for(self, requested: str | None) -> str | None:
        """The tenant a request acts for: the bound one; asking for another is forbidden."""
        if self.tenant is None:
            return requested or None
        if requested and requested != self.tenant:
            raise ApiError(403, "forbidden", f"this token acts for tenant {self.tenant!r} only")
        return self.tenant

    def sees(self, job: Any) -> bool:
        return self.tenant is None or (job.tenant or None) == self.tenant


#: The caller when authentication is off.
ANONYMOUS = Principal("anonymous", ALL_SCOPES)


class Authenticator:
    """Resolves the Authorization header to a Principal, or refuses with 401."""

    def __init__(self, app: Conveyor, required: bool | None = None) -> None:
        self.app = app
        self.required = required

    async def authenticate(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """Answers from memory when it can (the admin token, auth forced on or off); only a
        token lookup or the any-token-exists check goes to the database, in a thread."""
        if credentials is None or not credentials.credentials:
            if not await self._enabled():
                return ANONYMOUS
            raise ApiError(
                401,
                "unauthorized",
                "this endpoint needs a token: Authorization: Bearer <token>",
                headers=CHALLENGE,
            )
        token = credentials.credentials.strip()
        admin = self.app.settings.admin_token
        if admin and hmac.compare_digest(token.encode(), admin.encode()):
            return Principal("admin-token", ALL_SCOPES)
        record = await run_in_threadpool(tokens.find_token, self.app.store.engine, token)
        if record is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token", headers=CHALLENGE)
        return Principal(record.name, record.scopes, record.tenant)

    async def _enabled(self) -> bool:
        if self.required or self.app.settings.admin_token:
            return True
        if self.required is False:
            return False
        return bool(await run_in_threadpool(tokens.any_active, self.app.store.engine))


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, who must hold `scope` (or `admin`)."""

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.authenticate(credentials)
        if not principal.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"token {principal.name!r} lacks the {scope!r} scope "
                f"(it has: {', '.join(sorted(principal.scopes))})",
            )
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


async def require_operator(principal: Principal = Depends(require("admin"))) -> Principal:
    """Admin for the whole system: a tenant's admin token cannot pause everyone's queue."""
    if principal.tenant is not None:
        raise ApiError(
            403, "forbidden", "queue actions need an admin token that is not bound to a tenant"
        )
    return principal
