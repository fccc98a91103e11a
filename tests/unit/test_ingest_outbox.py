"""Ingest's outbox on a real SQLite file: what the relay would republish, and under which Kafka key."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest import models, repository, service
from shared import db
from shared.events import Post, PostEvent, Reaction


def test_unpublished_rows_carry_their_kafka_key_and_leave_once_marked(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ingest.db'}")
    db.create_schema(engine, models.SQLModel.metadata)
    then = datetime(2026, 3, 1, tzinfo=UTC)
    posts = [Post(post_id=f"p{i}", thread_id=f"t{i % 2}", author_id="u", content="车机又卡了",
                  created_at="2026-03-01T20:15:00+08:00", reply_to_post_id="p0" if i else None) for i in range(3)]
    stored = service.store_posts(engine=engine, posts=posts, now=then)
    assert [o.id for o in stored.outgoing] == ["p0", "p1", "p2"]
    reaction = Reaction(reaction_id="r1", post_id="p1", from_author_id="v", kind="thanks",
                        created_at="2026-03-01T21:00:00+08:00")
    service.store_reactions(engine=engine, reactions=[reaction], now=then)

    later = then + timedelta(minutes=1)
    with db.unit_of_work(engine) as session:
        pending = repository.unpublished(session, models.AcceptedPost, older_than=later, limit=10)
        assert [(i, k) for i, k, _ in pending] == [("p0", "t0"), ("p1", "t1"), ("p2", "t0")]
        event = PostEvent.model_validate_json(pending[1][2])
        assert event.parent is not None and event.parent.post_id == "p0"
        assert [(i, k) for i, k, _ in repository.unpublished(
            session, models.AcceptedReaction, older_than=later, limit=10)] == [("r1", "p1")]
        assert repository.unpublished(session, models.AcceptedPost, older_than=then, limit=10) == []
        repository.mark_published(session, models.AcceptedPost, ["p0", "p2"])
    with db.unit_of_work(engine) as session:
        assert [i for i, _, _ in repository.unpublished(session, models.AcceptedPost, older_than=later,
                                                         limit=10)] == ["p1"]
