from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpSettings, KafkaSettings, ServiceSettings


class ModelSettings(BaseModel):
    # Which backend classifies: "hybrid" (default: rules + trained model, offline, CPU only) or "rules".
    # Others (a fine-tuned transformer, an LLM endpoint) plug in through classifier.backends.BACKENDS;
    # `options` reach the backend's factory (e.g. CLASSIFIER_MODEL__OPTIONS='{"path": "/models/x.npz"}').
    backend: str = "hybrid"
    options: dict[str, str] = Field(default_factory=dict)


class ClassifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", env_nested_delimiter="__", extra="ignore")

    http: HttpSettings = HttpSettings(port=8002)
    kafka: KafkaSettings = KafkaSettings(group_id="anchor-classifier")
    model: ModelSettings = Field(default_factory=ModelSettings)


@lru_cache
def get_settings() -> ClassifierSettings:
    return ClassifierSettings()
