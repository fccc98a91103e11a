from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, HttpSettings, ServiceSettings


class OutboxSettings(BaseModel):
    # Rows still unpublished after `grace_s` (the inline publish failed or the process died) are republished.
    interval_s: float = Field(2.0, gt=0)
    grace_s: float = Field(5.0, ge=0)
    batch: int = Field(500, ge=1)


class RateLimitSettings(BaseModel):
    """Per-principal (token name) token bucket on POST /v1/posts and /v1/reactions, counted in records: a batch of
    500 posts costs 500. Over the limit: 429 with Retry-After. The defaults only stop a runaway client (the
    benchmark's ~5,000 posts/s and the demo never reach them); `records_per_second: 0` turns the limit off."""

    records_per_second: float = Field(10000.0, ge=0)
    # Records a principal may send at once after being idle; a batch larger than this passes only on a full
    # bucket (and leaves it in debt).
    burst: int = Field(20000, ge=1)


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", env_nested_delimiter="__", extra="ignore")

    database: DatabaseSettings = DatabaseSettings(url="sqlite:///./data/ingest.db")
    http: HttpSettings = HttpSettings(port=8001)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)


@lru_cache
def get_settings() -> IngestSettings:
    return IngestSettings()
