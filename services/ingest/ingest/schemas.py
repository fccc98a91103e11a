from pydantic import BaseModel, Field

from shared.events import Post, Reaction


class PostBatch(BaseModel):
    posts: list[Post] = Field(min_length=1, max_length=1000)


class ReactionBatch(BaseModel):
    reactions: list[Reaction] = Field(min_length=1, max_length=1000)


class Accepted(BaseModel):
    accepted: int
    duplicates: int
