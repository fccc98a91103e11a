from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, HttpSettings, ServiceSettings


class OutboxSettings(BaseModel):
    # Rows still unpublished after `grace_s` (the inline publish failed or the process died) are republished.
    interval_s: float = Field(2.0, gt=0)
    grace_s: float = Field(5.0, ge=0)
    batch: int = Field(500, ge=1)


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", env_nested_delimiter="__", extra="ignore")

    database: DatabaseSettings = DatabaseSettings(url="sqlite:///./data/ingest.db")
    http: HttpSettings = HttpSettings(port=8001)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)


@lru_cache
def get_settings() -> IngestSettings:
    return IngestSettings()
