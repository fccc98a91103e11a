from datetime import datetime

from pydantic import BaseModel

from shared.events import Author, Classification


class PostView(BaseModel):
    post_id: str
    thread_id: str
    author_id: str
    content: str
    created_at: datetime
    reply_to_post_id: str | None
    title: str | None
    source: str | None
    author: Author
    classification: Classification
    # Extensions: where the post is in the pipeline.
    target_author_id: str | None
    ingested_at: datetime
    classified_at: datetime | None
    stored_at: datetime


class Received(BaseModel):
    gratitude: int
    hostility: int
    bias_accusation: int
    reactions: int


class MemberView(BaseModel):
    member_id: str
    display_name: str | None
    first_seen: datetime
    last_seen: datetime
    posts: int
    labor: dict[str, int]
    received: Received
    acknowledgements: int
    # Extensions: technical contribution to flaw research, and whether the member is brand staff.
    research: dict[str, int]
    is_official: bool
