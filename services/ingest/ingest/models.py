"""Ingest's own tables: every accepted record (the persisted de-duplication key) doubling as the outbox."""

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
