"""Settings groups every service shares; each service subclasses `ServiceSettings` with its own env prefix.

Nested groups read from `<PREFIX>_<GROUP>__<FIELD>`, e.g. `RECOGNITION_KAFKA__BOOTSTRAP_SERVERS`.
"""

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = Literal["ingest", "read", "wellbeing", "recognize", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "wellbeing", "recognize", "admin")


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str | None = None
    group_id: str | None = None
    max_batch: int = Field(500, ge=1, le=10000)
    poll_timeout_ms: int = Field(200, ge=10)
    # Unknown (not clearly transient) failures are retried this often before the records are isolated
    # one by one and the failing ones dead-lettered.
    max_attempts: int = Field(3, ge=1)
    retry_backoff_s: float = Field(0.5, gt=0)
    max_backoff_s: float = Field(15.0, gt=0)
    request_timeout_ms: int = Field(15000, ge=1000)
    linger_ms: int = Field(5, ge=0)
    create_topics: bool = True


class DatabaseSettings(BaseModel):
    url: str = "sqlite:///./data/anchor.db"
    pool_size: int = Field(5, ge=1)
    echo: bool = False
    # The longest one statement of the service (a request's read, a consumer batch's write) may run or wait for a
    # lock: past it the request answers 503 and the consumer retries the batch, instead of hanging. On SQLite it
    # is the busy timeout (readers never wait there). The community snapshot worker is not bound by it.
    statement_timeout_s: float = Field(30.0, gt=0, le=3600)


class TokenSpec(BaseModel):
    """A bearer token: give `token` (plain, for development) or `sha256` (hex digest, for production)."""

    # Recorded as who read, acknowledged, opted out (columns of 128 characters): a longer name is refused at start
    # rather than failing every write that names it.
    name: str = Field("unnamed", min_length=1, max_length=128)
    scopes: list[Scope]
    token: SecretStr | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")

    @model_validator(mode="after")
    def _one_secret(self) -> "TokenSpec":
        if (self.token is None) == (self.sha256 is None):
            raise ValueError("give exactly one of token or sha256")
        return self


class AuthSettings(BaseModel):
    tokens: list[TokenSpec] = Field(default_factory=list)


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log_level: str = "INFO"
    log_json: bool = True
