"""Ingest's own tables: every accepted record (the persisted de-duplication key) doubling as the outbox, and the
tombstones of deleted members."""

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from shared.db import UtcDateTime


class AcceptedPost(SQLModel, table=True):
    __tablename__ = "ingest_posts"

    post_id: str = Field(primary_key=True, max_length=128)
    thread_id: str = Field(max_length=128)
    author_id: str = Field(index=True, max_length=128)
    content: str
    ingested_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False, index=True))
    published: bool = Field(default=False, index=True)
    payload: str  # the event exactly as published, so a republish sends the same bytes


class AcceptedReaction(SQLModel, table=True):
    __tablename__ = "ingest_reactions"

    reaction_id: str = Field(primary_key=True, max_length=128)
    post_id: str = Field(max_length=128)
    from_author_id: str = Field(index=True, max_length=128)
    ingested_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False, index=True))
    published: bool = Field(default=False, index=True)
    payload: str


class DeletedMember(SQLModel, table=True):
    """Tombstones of deleted members, by digest of the id: a post or reaction of theirs created at or before
    `requested_at` that is sent again is reported as a duplicate, never stored or published again."""

    __tablename__ = "ingest_deleted_members"

    member_key: str = Field(primary_key=True, max_length=64)
    requested_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    deleted_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
