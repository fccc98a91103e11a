from functools import lru_cache
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import make_url

from shared.settings import DatabaseSettings, HttpSettings, KafkaSettings, ServiceSettings


class LedgerSettings(BaseModel):
    # Local calendar of the community: the daily cap and "late night" follow it.
    timezone: str = "Asia/Shanghai"
    # Labels of one kind a member earns per local day; more are stored but do not count (anti-flooding).
    daily_cap: int = Field(12, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RiskSettings(BaseModel):
    window_days: int = Field(30, ge=7, le=365)
    baseline_days: int = Field(90, ge=14, le=730)
    # Recent activity compared with the baseline for withdrawal.
    recent_days: int = Field(14, ge=3, le=60)


class AlertSettings(BaseModel):
    # How often the community snapshot (risk list, topics, health, gauges, alerts) is recomputed.
    refresh_seconds: float = Field(30.0, gt=0)
    # The most of the wall time computing the snapshot may take: after a compute of c seconds the next one waits
    # at least c * (1 - share) / share. A large community then refreshes less often by itself (1M posts: a 26 s
    # compute, about 4 minutes apart) instead of computing all the time and slowing every read.
    max_busy_share: float = Field(0.1, gt=0, le=1)
    # The snapshot worker's nice increment (0-19): it is background work, so requests win the CPU from it.
    worker_niceness: int = Field(10, ge=0, le=19)
    unanswered_venting_hours: float = Field(6.0, gt=0)


class WriterSettings(BaseModel):
    # Decode and write consumed batches in a child process, so their CPU work never holds the interpreter lock
    # that the service's requests need (see `writing.py`); off: in a thread of the service.
    process: bool = True
    # The writer process's nice increment (0-19). 0: ingest throughput and reads share the CPU equally. Unlike the
    # snapshot worker the writer is on the pipeline's path; no benefit of +10 to reads could be measured apart from
    # the benchmark machine's run-to-run variation (bench/README.md), and the runs meeting the throughput target
    # used 0.
    niceness: int = Field(0, ge=0, le=19)


class ReadSettings(BaseModel):
    # Whether reads of bounded cost (a post by id, risks served from the snapshot) run on the event loop instead of
    # a worker thread, with a risk read's audit rows committed there (see `reads.py`). Unset: on SQLite, where they
    # are the process's own CPU work; not on PostgreSQL, where each statement waits for the server and the loop
    # would wait with it.
    on_loop: bool | None = None
    # Reader processes for the reads whose cost follows a member's history (a member's view, a thank-you draft; see
    # `read_pool.py`), so that they use another core. Unset: one (two did no better on two cores); never any on an
    # in-memory database, which no other process can open. 0: in worker threads.
    processes: int | None = Field(None, ge=0, le=16)


class AuditSettings(BaseModel):
    # The database of the audit trail of burnout-risk reads. Unset: on SQLite a file of its own next to the
    # service's (`recognition.db` -> `recognition-audit.db`), because SQLite has one write lock per file and the
    # consumer's batches hold the service's almost all the time under load: every audited read waited for it
    # (issue 6: p99 2.9 s, 0.17 s without the wait). Elsewhere (PostgreSQL locks rows) the service's database.
    url: str | None = None


def default_audit_url(database_url: str) -> str:
    """The default audit database for a service database URL (see `AuditSettings`)."""
    url = make_url(database_url)
    name = url.database or ""
    if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return database_url
    path = PurePosixPath(name)
    return url.set(database=str(path.with_name(f"{path.stem}-audit{path.suffix}"))).render_as_string(
        hide_password=False)


class RecognitionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECOGNITION_", env_nested_delimiter="__", extra="ignore")

    database: DatabaseSettings = DatabaseSettings(url="sqlite:///./data/recognition.db")
    http: HttpSettings = HttpSettings(port=8003)
    kafka: KafkaSettings = KafkaSettings(group_id="anchor-recognition")
    ledger: LedgerSettings = LedgerSettings()
    risk: RiskSettings = RiskSettings()
    alerts: AlertSettings = AlertSettings()
    writer: WriterSettings = WriterSettings()
    audit: AuditSettings = AuditSettings()
    reads: ReadSettings = ReadSettings()

    @property
    def audit_url(self) -> str:
        return self.audit.url or default_audit_url(self.database.url)


@lru_cache
def get_settings() -> RecognitionSettings:
    return RecognitionSettings()
