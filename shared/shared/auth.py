"""Bearer tokens with scopes, from settings. Presented tokens are hashed and compared in constant time."""

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import AnchorError
from shared.settings import AuthSettings, Scope


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenRegistry:
    def __init__(self, settings: AuthSettings) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for spec in settings.tokens:
            secret = bytes.fromhex(spec.sha256) if spec.sha256 else digest(spec.token.get_secret_value())  # type: ignore[union-attr]
            self._entries.append((secret, Principal(spec.name, frozenset(spec.scopes))))

    def authenticate(self, presented: str) -> Principal | None:
        candidate = digest(presented)
        found: Principal | None = None
        # Every entry is compared, so the time taken does not tell which entry (or none) matched.
        for secret, principal in self._entries:
            if hmac.compare_digest(candidate, secret) and found is None:
                found = principal
        return found


_bearer = HTTPBearer(auto_error=False, description="Bearer token configured in the service's AUTH__TOKENS")


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller's principal (401 without a known token)."""
    registry: TokenRegistry = request.app.state.tokens
    principal = registry.authenticate(credentials.credentials) if credentials else None
    if principal is None:
        raise AnchorError(401, "unauthorized", "a valid bearer token is required",
                          headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(scope: Scope, *, ready: Callable[[Request], None] | None = None):
    """Dependency: the request carries a known token (401 otherwise) that has `scope` (403 otherwise); then, if
    given, `ready(request)` may refuse it (the service's database not ready: 503). Authentication comes first, so
    a caller without a valid token learns nothing else, not even that the database is down.

    One dependency for all three checks: FastAPI solves every node of a request's dependency tree in turn, and
    the tree this replaced (authentication and readiness on the router, then the scope check, whose cached
    authentication FastAPI still solved again) cost more of the serving process's time than the checks."""

    async def check(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        principal = authenticate(request, credentials)
        if scope not in principal.scopes:
            raise AnchorError(403, "forbidden", f"the token lacks the '{scope}' scope")
        if ready is not None:
            ready(request)
        return principal

    # Marks the dependency with its scope, so the route table tells which scope each route needs
    # (tests/integration/test_access.py proves every route outside a small public list carries one).
    check.required_scope = scope  # type: ignore[attr-defined]
    return check


def required_scopes(dependant: Any) -> set[str]:
    """The scopes a FastAPI route's dependency tree (`route.dependant`) requires through `require`."""
    found: set[str] = set()
    stack = [dependant]
    while stack:
        node = stack.pop()
        scope = getattr(node.call, "required_scope", None)
        if scope is not None:
            found.add(scope)
        stack.extend(node.dependencies)
    return found
