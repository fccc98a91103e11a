"""Kafka topic names (api.md) and the layout the services expect them to have."""

from dataclasses import dataclass

POSTS = "koc.posts.v1"
REACTIONS = "koc.reactions.v1"
CLASSIFIED = "koc.posts.classified.v1"
ALERTS = "koc.alerts.v1"
DEADLETTER = "koc.deadletter.v1"
MEMBER_EVENTS = "koc.members.v1"  # extension: member lifecycle (deletion, opt-out) carried to every service


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


_WEEK_MS = 7 * 24 * 3600 * 1000

# Partition counts bound consumer parallelism: replicas beyond this count sit idle.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(POSTS, 6, 2 * _WEEK_MS),
    TopicSpec(REACTIONS, 6, 2 * _WEEK_MS),
    TopicSpec(CLASSIFIED, 6, 2 * _WEEK_MS),
    TopicSpec(ALERTS, 3, 4 * _WEEK_MS),
    TopicSpec(DEADLETTER, 3, 4 * _WEEK_MS),
    TopicSpec(MEMBER_EVENTS, 3, 4 * _WEEK_MS),
)
