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
