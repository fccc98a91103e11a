"""A small language for community timelines whose outcome is known: classified posts with chosen labels,
written into recognition's real database through its own write path."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine

from recognition import repository
from shared import db, topics
from shared.events import ClassifiedPostEvent, ReactionEvent, new_envelope
from shared.labels import LABELS

ZONE = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Timeline:
    def __init__(self, engine: Engine | None, prefix: str) -> None:
        self.engine = engine
        self.prefix = prefix
        self.events: list[ClassifiedPostEvent] = []
        self.reactions: list[ReactionEvent] = []
        self.authors: dict[str, str] = {}
        self.contents: dict[str, str] = {}
        self.threads: dict[str, str] = {}
        self._n = 0

    def id(self, kind: str) -> str:
        self._n += 1
        return f"{self.prefix}-{kind}{self._n}"

    def member(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def post(self, author: str, labels: list[str], *, at: datetime, thread: str | None = None,
             reply_to: str | None = None, content: str = "内容", title: str | None = None,
             official: bool = False, component: str | None = None, conditions: list[str] | None = None,
             with_parent: bool = True) -> str:
        post_id = self.id("p")
        thread_id = thread or self.id("t")
        parent = None
        if reply_to is not None and with_parent and reply_to in self.authors:
            parent = {"post_id": reply_to, "author_id": self.authors[reply_to], "content": self.contents[reply_to]}
        assert set(labels) <= set(LABELS)
        event = ClassifiedPostEvent.model_validate({
            "post_id": post_id, "thread_id": thread_id, "author_id": author, "content": content,
            "created_at": at.isoformat(), "reply_to_post_id": reply_to, "title": title, "source": "app",
            "author": {"display_name": author.rsplit("-", 1)[-1], "is_official": official},
            **new_envelope(at), "parent": parent,
            "classification": {"labels": labels, "scores": {label: 0.9 for label in labels},
                               "component": component, "conditions": conditions or [],
                               "evidence": [{"label": label, "text": content[:20]} for label in labels],
                               "model_version": "test"}})
        self.events.append(event)
        self.authors[post_id] = author
        self.contents[post_id] = content
        self.threads[post_id] = thread_id
        return post_id

    def thread_of(self, post_id: str) -> str:
        return self.threads[post_id]

    def reaction(self, post_id: str, from_author: str, kind: str, *, at: datetime) -> None:
        self.reactions.append(ReactionEvent.model_validate({
            "reaction_id": self.id("r"), "post_id": post_id, "from_author_id": from_author, "kind": kind,
            "created_at": at.isoformat(), **new_envelope(at)}))

    def flush(self) -> None:
        """Writes what was added since the last flush, in one unit of work, the way the consumer does."""
        assert self.engine is not None
        with db.unit_of_work(self.engine) as session:
            now = datetime.now(UTC)
            repository.store_posts(session, self.events, now=now, zone=ZONE)
            repository.store_reactions(session, self.reactions, now=now)
        self.events, self.reactions = [], []


    async def publish(self, bootstrap: str) -> None:
        """Sends what was added to the real topics recognition consumes, the way the classifier and ingest do."""
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for e in self.events:
                await producer.send(topics.CLASSIFIED, key=e.thread_id.encode(), value=e.model_dump_json().encode())
            for r in self.reactions:
                await producer.send(topics.REACTIONS, key=r.post_id.encode(), value=r.model_dump_json().encode())
            await producer.flush()
        finally:
            await producer.stop()
        self.events, self.reactions = [], []


def days_ago(n: float, *, hour: int = 12, anchor: datetime = AS_OF) -> datetime:
    """`n` days before `anchor`, at a local (Asia/Shanghai) hour."""
    day = (anchor - timedelta(days=n)).astimezone(ZONE)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(UTC)


def asked(t: Timeline, asker: str, *, at: datetime, content: str = "刚提车,请问这个怎么设置?") -> str:
    return t.post(asker, ["newcomer_question"], at=at, content=content, title="新手求助")


def answer(t: Timeline, helper: str, question: str, *, at: datetime, labels: list[str] | None = None,
           content: str = "设置→车辆→驾驶里就能改,别担心") -> str:
    return t.post(helper, labels or ["newcomer_answer"], at=at, thread=t.thread_of(question), reply_to=question,
                  content=content)
