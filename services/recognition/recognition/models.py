"""Recognition's tables. Rows are keyed by the ids of the events that produce them, so a redelivered event
writes nothing new (at-least-once delivery, counted once)."""

from datetime import datetime

from sqlalchemy import JSON, Column, Index, MetaData
from sqlmodel import Field, SQLModel

from shared.db import UtcDateTime


def _at(index: bool = False, nullable: bool = False) -> datetime:
    return Field(sa_column=Column(UtcDateTime, nullable=nullable, index=index))  # type: ignore[no-any-return]


class StoredPost(SQLModel, table=True):
    __tablename__ = "rec_posts"
    __table_args__ = (
        # A member's reads (post count, first and last post, name as of a time) walk this index, not their posts.
        Index("ix_rec_posts_author_time", "author_id", "created_at"),
        # Staff status as of a time: only staff posts are in its `is_official = true` part.
        Index("ix_rec_posts_staff", "is_official", "author_id", "created_at"),
    )

    post_id: str = Field(primary_key=True, max_length=128)
    thread_id: str = Field(index=True, max_length=128)
    author_id: str = Field(max_length=128)
    reply_to_post_id: str | None = Field(default=None, index=True, max_length=128)
    # The author of the post replied to: who receives this post's labor, thanks or attack.
    target_author_id: str | None = Field(default=None, index=True, max_length=128)
    title: str | None = None
    content: str
    created_at: datetime = _at(index=True)
    source: str | None = None
    author_display_name: str | None = None
    is_official: bool = False
    event_id: str
    ingested_at: datetime = _at()
    classified_at: datetime | None = _at(nullable=True)
    stored_at: datetime = _at()
    labels: list[str] = Field(sa_column=Column(JSON, nullable=False))
    scores: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    component: str | None = None
    conditions: list[str] = Field(sa_column=Column(JSON, nullable=False))
    evidence: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    model_version: str


class PostLabel(SQLModel, table=True):
    """One row per (post, label): the unit every count, score and ranking aggregates."""

    __tablename__ = "rec_post_labels"
    __table_args__ = (
        # Covering the per-member counts (credited labels per day; labels received from others), so a member's
        # view reads index entries only, however long their history.
        Index("ix_rec_post_labels_author_day", "author_id", "label", "created_at", "credited", "day"),
        Index("ix_rec_post_labels_target_from", "target_author_id", "label", "created_at", "author_id"),
        Index("ix_rec_post_labels_label", "label", "created_at"),
        Index("ix_rec_post_labels_reply", "reply_to_post_id", "label"),
        Index("ix_rec_post_labels_thread", "thread_id", "created_at"),
    )

    post_id: str = Field(primary_key=True, max_length=128)
    label: str = Field(primary_key=True, max_length=32)
    author_id: str = Field(max_length=128)
    target_author_id: str | None = Field(default=None, max_length=128)
    reply_to_post_id: str | None = Field(default=None, max_length=128)
    thread_id: str = Field(max_length=128)
    is_official: bool = False
    # Whether this label counts for its author: labor only when directed at another member (a reply to
    # someone else, or a post in a thread someone else opened), research always, staff never.
    credited: bool = False
    # The community's local calendar day and hour: the daily cap and "late night" are local notions.
    day: str = Field(max_length=10)
    hour: int = 0
    component: str | None = Field(default=None, max_length=32)
    conditions: str = Field(default="", max_length=200)  # comma-separated, for topic aggregation
    created_at: datetime = _at()


class Thread(SQLModel, table=True):
    """Who opened each thread: a post that replies to no one is directed at the thread's opener."""

    __tablename__ = "rec_threads"

    thread_id: str = Field(primary_key=True, max_length=128)
    opener_post_id: str = Field(max_length=128)
    opener_author_id: str = Field(max_length=128)
    title: str | None = None
    created_at: datetime = _at()


class Member(SQLModel, table=True):
    __tablename__ = "rec_members"

    member_id: str = Field(primary_key=True, max_length=128)
    display_name: str | None = None
    joined_at: datetime | None = _at(nullable=True)
    is_official: bool = False
    first_seen: datetime = _at()
    last_seen: datetime = _at()
    # When anything that goes into the member's risk last changed (their posts, replies and reactions to them,
    # an acknowledgement, an opt-out): a "now" read serves the community snapshot's answer only when nothing
    # changed since it was taken. NULL: nothing since this column was added.
    changed_at: datetime | None = _at(nullable=True)


class StoredReaction(SQLModel, table=True):
    __tablename__ = "rec_reactions"
    __table_args__ = (Index("ix_rec_reactions_recipient", "recipient_id", "created_at", "from_author_id", "kind"),)

    reaction_id: str = Field(primary_key=True, max_length=128)
    post_id: str = Field(index=True, max_length=128)
    from_author_id: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    created_at: datetime = _at(index=True)
    # The post's author, once recognition has the post (NULL until then): reactions received are read by it
    # instead of joining every post of the member. NULL rows are joined at read time, so they still count.
    recipient_id: str | None = Field(default=None, max_length=128)


class Acknowledgement(SQLModel, table=True):
    """A brand's acknowledgement of a member (private thanks, public award, gift): reward in the risk model."""

    __tablename__ = "rec_acknowledgements"
    __table_args__ = (Index("ix_rec_ack_member", "member_id", "created_at"),)

    acknowledgement_id: str = Field(primary_key=True, max_length=128)
    member_id: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    note: str | None = None
    created_at: datetime = _at()
    recorded_at: datetime = _at()
    recorded_by: str = Field(max_length=128)


class AlertState(SQLModel, table=True):
    """The last state alerted per subject, so each alert fires once per crossing, across restarts and replicas."""

    __tablename__ = "rec_alert_state"

    alert_key: str = Field(primary_key=True, max_length=300)
    kind: str = Field(max_length=32)
    state: str = Field(max_length=32)
    updated_at: datetime = _at()


class WellbeingOptOut(SQLModel, table=True):
    """Members who asked not to be scored for burnout risk: never scored, listed or alerted; recognition goes on."""

    __tablename__ = "rec_wellbeing_opt_outs"

    member_id: str = Field(primary_key=True, max_length=128)
    opted_out: bool = True
    updated_at: datetime = _at(index=True)
    updated_by: str = Field(max_length=128)


class WellbeingRead(SQLModel, table=True):
    """The audit trail of burnout-risk reads: one row per member whose risk a request disclosed."""

    __tablename__ = "rec_wellbeing_reads"
    __table_args__ = (Index("ix_rec_wellbeing_reads_member", "member_id", "read_at"),)

    audit_id: int | None = Field(default=None, primary_key=True)
    read_id: str = Field(max_length=64)  # the request: rows of one list read share it
    reader: str = Field(max_length=128)  # the token's name
    member_id: str = Field(max_length=128)
    endpoint: str = Field(max_length=16)  # "member" (one member's risk) or "list"
    read_at: datetime = _at(index=True)
    as_of: datetime | None = _at(nullable=True)  # as asked; null when the read was about "now"


class DeletedMember(SQLModel, table=True):
    """Tombstones of deleted members, by digest of the id: their content created at or before `requested_at`
    that arrives later (in flight on Kafka, replayed) is dropped, and replies to it count for no one."""

    __tablename__ = "rec_deleted_members"

    member_key: str = Field(primary_key=True, max_length=64)
    requested_at: datetime = _at()
    deleted_at: datetime = _at(index=True)


def _metadata(*tables: type[SQLModel]) -> MetaData:
    found = MetaData()
    for table in tables:
        table.__table__.to_metadata(found)  # type: ignore[attr-defined]
    return found


# The service's tables, and the audit trail's on its own (it may live in a database of its own: AuditSettings).
_LEDGER_TABLES = (StoredPost, PostLabel, Thread, Member, StoredReaction, Acknowledgement, AlertState, WellbeingOptOut,
                  DeletedMember)
LEDGER = _metadata(*_LEDGER_TABLES)
AUDIT = _metadata(WellbeingRead)
EVERYTHING = _metadata(*_LEDGER_TABLES, WellbeingRead)
