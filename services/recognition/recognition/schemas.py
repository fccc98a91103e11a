from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shared.events import Author, Classification, Text, Timestamp


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


class DriverView(BaseModel):
    factor: str
    detail: str
    evidence_post_ids: list[str]


class ActionView(BaseModel):
    action: Literal["private_thanks", "private_channel", "faq", "nomination", "rest_reward"]
    detail: str


class BurnoutRisk(BaseModel):
    member_id: str
    as_of: datetime
    score: float = Field(ge=0, le=1)
    level: Literal["low", "elevated", "high", "critical"]
    effort: float
    reward: float
    effort_reward_ratio: float
    drivers: list[DriverView]
    recommended_actions: list[ActionView]
    # Extensions: the parts of the score, and what it is not.
    parts: dict[str, float]
    display_name: str | None = None
    note: str = ("非临床评估:这是“付出与认可之间的落差”的提示,用于决定如何感谢和支持这位成员,"
                 "不是对任何人健康状况的判断。")


class BurnoutList(BaseModel):
    as_of: datetime
    items: list[BurnoutRisk]


class AcknowledgementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["private_thanks", "public_award", "gift"]
    note: Annotated[Text, Field(max_length=2000)] | None = None
    created_at: Timestamp | None = None
    # Extension: a client-chosen id makes a retried request count once.
    acknowledgement_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")


class AcknowledgementOut(BaseModel):
    acknowledgement_id: str
    member_id: str
    kind: str
    note: str | None
    created_at: datetime
    duplicate: bool


class Evidence(BaseModel):
    post_id: str
    label: str
    excerpt: str


class Nomination(BaseModel):
    member_id: str
    rank: int
    score: float
    summary: str
    evidence: list[Evidence]
    display_name: str | None = None


class Nominations(BaseModel):
    award: str
    title: str
    since: datetime
    until: datetime
    items: list[Nomination]


class ThankYou(BaseModel):
    member_id: str
    message: str
    evidence_post_ids: list[str]


class DefectTopic(BaseModel):
    topic_id: str
    thread_ids: list[str]
    component: str
    title: str | None
    first_seen: datetime
    last_seen: datetime
    posts: int
    reporters: int
    stage_counts: dict[str, int]
    conditions: dict[str, int]
    workaround_post_ids: list[str]
    consensus: Literal["investigating", "quirk", "defect", "contested"]
    escalating: bool
    safety_review: bool
    # Extensions: why it was grouped and framed so.
    symptom: str | None
    framing_weight: dict[str, float]
    safety_relevant: bool


class DefectTopics(BaseModel):
    as_of: datetime
    items: list[DefectTopic]


class Minutes(BaseModel):
    median: float | None
    p90: float | None


class CommunityHealth(BaseModel):
    as_of: datetime
    since: datetime
    posts: int
    venting_posts: int
    venting_answered_with_empathy_share: float | None
    minutes_to_first_empathetic_reply: Minutes
    newcomer_questions: int
    newcomer_questions_answered_share: float | None
    minutes_to_first_answer: Minutes
    hostility_posts: int
    hostility_rate: float | None
    labor_top5_share: float | None
    members_doing_half_of_labor: int
    members_doing_labor: int
    members_high_risk_or_above: int


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opted_out: StrictBool  # "no" or 0 is a 422, never read as false


class OptOut(BaseModel):
    member_id: str
    opted_out: bool
    updated_at: datetime


class WellbeingReadView(BaseModel):
    audit_id: int
    # Rows written by one request share it (a list read writes one row per member it returned).
    read_id: str
    # The name of the token that read (never the token).
    reader: str
    member_id: str
    endpoint: Literal["member", "list"]
    read_at: datetime
    # As asked; null when the read was about "now".
    as_of: datetime | None


class WellbeingReads(BaseModel):
    since: datetime
    until: datetime
    items: list[WellbeingReadView]
    # More rows matched than `limit`: ask again with `since` set to the last `read_at`.
    truncated: bool
