from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, HttpSettings, KafkaSettings, ServiceSettings


class RecognitionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECOGNITION_", env_nested_delimiter="__", extra="ignore")

    database: DatabaseSettings = DatabaseSettings(url="sqlite:///./data/recognition.db")
    http: HttpSettings = HttpSettings(port=8003)
    kafka: KafkaSettings = KafkaSettings(group_id="anchor-recognition")


@lru_cache
def get_settings() -> RecognitionSettings:
    return RecognitionSettings()
