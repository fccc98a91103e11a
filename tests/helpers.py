"""Builders and waiting helpers for tests."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def post(post_id: str, *, thread_id: str, author_id: str, content: str, created_at: str = "2026-03-01T20:15:00+08:00",
         reply_to: str | None = None, title: str | None = "新手求助", official: bool = False) -> dict[str, Any]:
    return {"post_id": post_id, "thread_id": thread_id, "author_id": author_id, "content": content,
            "created_at": created_at, "reply_to_post_id": reply_to, "title": title, "source": "app",
            "author": {"display_name": author_id, "is_official": official}}


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Calls `check` until it returns a truthy value; fails with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met after {timeout}s; last value: {last!r}")


def visible(client: httpx.Client, recognition: str, post_id: str) -> dict[str, Any] | None:
    response = client.get(f"{recognition}/v1/posts/{post_id}")
    return response.json() if response.status_code == 200 else None


async def read_topic(bootstrap: str, topic: str, *, quiet_polls: int = 3, max_polls: int = 400) -> list[ConsumerRecord]:
    """Every record on `topic` so far, read from the start by a fresh consumer group: polls until several
    polls in a row bring nothing (a fixed number of polls stops short once the topic holds many records)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=uid("reader"),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        found: list[ConsumerRecord] = []
        quiet = 0
        for _ in range(max_polls):
            batch = [r for records in (await consumer.getmany(timeout_ms=300)).values() for r in records]
            found.extend(batch)
            quiet = 0 if batch else quiet + 1
            if quiet >= quiet_polls:
                break
        return found
    finally:
        await consumer.stop()
