"""Bearer tokens with scopes, from settings. Presented tokens are hashed and compared in constant time."""

import hashlib
import hmac
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


async def authenticated(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller's principal (401 without a known token). Also a router dependency, before any other: a caller
    without a valid token then learns nothing else (not even that the database is down). FastAPI caches it per
    request, so a route's `require` reuses this result instead of authenticating again. Async: no I/O, so no
    hop to a worker thread."""
    registry: TokenRegistry = request.app.state.tokens
    principal = registry.authenticate(credentials.credentials) if credentials else None
    if principal is None:
        raise AnchorError(401, "unauthorized", "a valid bearer token is required",
                          headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(scope: Scope):
    """Dependency: the request carries a known token that has `scope` (401 otherwise, 403 without the scope)."""

    async def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if scope not in principal.scopes:
            raise AnchorError(403, "forbidden", f"the token lacks the '{scope}' scope")
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
