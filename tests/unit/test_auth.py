import hashlib

import pytest
from pydantic import ValidationError

from shared.auth import TokenRegistry
from shared.settings import AuthSettings, TokenSpec


def test_plain_and_hashed_tokens_authenticate_with_their_scopes() -> None:
    hashed = hashlib.sha256(b"prod-secret").hexdigest()
    registry = TokenRegistry(AuthSettings(tokens=[
        TokenSpec(name="dev", token="dev-secret", scopes=["ingest"]),
        TokenSpec(name="grafana", sha256=hashed, scopes=["read"]),
    ]))
    dev = registry.authenticate("dev-secret")
    assert dev is not None and dev.name == "dev" and dev.scopes == {"ingest"}
    prod = registry.authenticate("prod-secret")
    assert prod is not None and prod.name == "grafana" and prod.scopes == {"read"}
    assert registry.authenticate("dev-secre") is None
    assert registry.authenticate("") is None


def test_two_tokens_valid_at_once_allow_rotation() -> None:
    registry = TokenRegistry(AuthSettings(tokens=[
        TokenSpec(name="old", token="a", scopes=["read"]), TokenSpec(name="new", token="b", scopes=["read"])]))
    assert registry.authenticate("a").name == "old"  # type: ignore[union-attr]
    assert registry.authenticate("b").name == "new"  # type: ignore[union-attr]


def test_a_token_spec_needs_exactly_one_secret() -> None:
    with pytest.raises(ValidationError):
        TokenSpec(name="x", scopes=["read"])
    with pytest.raises(ValidationError):
        TokenSpec(name="x", scopes=["read"], token="a", sha256="0" * 64)
    with pytest.raises(ValidationError):
        TokenSpec(name="x", scopes=["everything"], token="a")  # type: ignore[list-item]


def test_tokens_come_from_the_environment_with_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.config import IngestSettings

    monkeypatch.setenv("INGEST_AUTH__TOKENS", '[{"name": "ops", "token": "t", "scopes": ["ingest", "read"]}]')
    monkeypatch.setenv("INGEST_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
    settings = IngestSettings()
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.auth.tokens[0].scopes == ["ingest", "read"]
    assert settings.http.port == 8001


def test_every_entry_is_compared_whatever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: the presented token's digest is compared with every configured digest, with
    `hmac.compare_digest`, whether the first, the last or no entry matches."""
    import hmac

    from shared import auth

    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    registry = TokenRegistry(AuthSettings(tokens=[TokenSpec(name=f"t{i}", token=f"secret-{i}", scopes=["read"])
                                                  for i in range(5)]))
    for presented in ("secret-0", "secret-4", "nope"):
        calls.clear()
        registry.authenticate(presented)
        assert len(calls) == 5 and all(a == hashlib.sha256(presented.encode()).digest() for a, _ in calls)
    # Only digests are kept, never the plaintext.
    assert all(isinstance(secret, bytes) and len(secret) == 32 for secret, _ in registry._entries)


def test_the_scope_a_route_needs_is_readable_from_its_dependencies() -> None:
    from fastapi import Depends, FastAPI

    from shared import auth

    app = FastAPI()

    @app.get("/a")
    async def a(_: auth.Principal = Depends(auth.require("wellbeing"))) -> None: ...

    @app.get("/b")
    async def b() -> None: ...

    found = {route.path: auth.required_scopes(route.dependant) for route in app.routes if hasattr(route, "dependant")}
    assert found["/a"] == {"wellbeing"} and found["/b"] == set()


@pytest.mark.parametrize("service", ["ingest", "recognition"])
def test_a_caller_without_a_valid_token_learns_nothing_about_the_database(service: str) -> None:
    # No lifespan has run, so the database is "not available yet": a valid token gets that 503, an invalid or
    # missing one only the 401.
    from fastapi.testclient import TestClient

    if service == "ingest":
        from ingest.app import create_app
        from ingest.config import IngestSettings as Settings
        method, path = "POST", "/v1/posts"
    else:
        from recognition.app import create_app
        from recognition.config import RecognitionSettings as Settings
        method, path = "GET", "/v1/posts/p-1"
    settings = Settings.model_validate({"auth": {"tokens": [
        {"name": "ops", "token": "s3cret", "scopes": ["read", "ingest"]},
        {"name": "other", "token": "0ther", "scopes": ["wellbeing"]}]}})
    client = TestClient(create_app(settings))
    body = {"json": {"posts": []}} if method == "POST" else {}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.request(method, path, headers=headers, **body)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
    registry = client.app.state.tokens  # type: ignore[attr-defined]
    calls = []
    authenticate = registry.authenticate
    registry.authenticate = lambda presented: calls.append(presented) or authenticate(presented)
    response = client.request(method, path, headers={"Authorization": "Bearer s3cret"}, **body)
    assert response.status_code == 503, response.text
    assert len(calls) == 1  # one check per request: authentication, scope, then readiness
    response = client.request(method, path, headers={"Authorization": "Bearer 0ther"}, **body)
    assert response.status_code == 403, response.text  # the missing scope, before anything about the database
