"""Crash safety and poison messages: a SIGKILLed consumer loses nothing and double-counts nothing;
a record that can never be processed is dead-lettered with its origin and the consumer goes on."""

import asyncio
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devstack import postgres
from shared import topics
from tests.conftest import BACKENDS, new_stack
from tests.helpers import eventually, post, read_topic, uid, visible


async def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, key=key, value=value)
        return meta.partition, meta.offset
    finally:
        await producer.stop()


async def _deadletters(bootstrap: str) -> list[dict[str, str]]:
    return [{k: v.decode() for k, v in r.headers} | {"value": r.value.decode("utf-8", "replace"),
                                                     "key": (r.key or b"").decode()}
            for r in await read_topic(bootstrap, topics.DEADLETTER)]


def test_poison_messages_are_deadlettered_with_their_origin(stack, client: httpx.Client) -> None:
    key = uid("poison").encode()
    partition, offset = asyncio.run(_produce(stack.bootstrap, topics.POSTS, key, b"\xff\xfe not json at all"))
    c_part, c_off = asyncio.run(_produce(stack.bootstrap, topics.CLASSIFIED, key, b'{"post_id": "x"}'))

    def landed() -> list[dict[str, str]]:
        return [d for d in asyncio.run(_deadletters(stack.bootstrap)) if d["key"] == key.decode()]

    letters = eventually(lambda: len(landed()) >= 2 and landed(), timeout=30)
    by_topic = {d["source_topic"]: d for d in letters}
    assert by_topic[topics.POSTS]["source_partition"] == str(partition)
    assert by_topic[topics.POSTS]["source_offset"] == str(offset)
    assert "invalid post event" in by_topic[topics.POSTS]["error"]
    assert by_topic[topics.POSTS]["value"].endswith("not json at all")
    assert by_topic[topics.CLASSIFIED]["source_offset"] == str(c_off)
    assert by_topic[topics.CLASSIFIED]["source_partition"] == str(c_part)
    assert "thread_id" in by_topic[topics.CLASSIFIED]["error"]

    # The consumers went on: healthy traffic after the poison is processed.
    healthy = post(uid("p"), thread_id=uid("t"), author_id=uid("u"), content="今天提车了,开心")
    assert client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": [healthy]}).status_code == 202
    eventually(lambda: visible(client, stack.url("recognition"), healthy["post_id"]))


def _processed(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("anchor_consumer_messages_processed_total{"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("victim", ["classifier", "recognition"])
def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
        victim: str, backend: str, tmp_path: Path, pg_cluster: postgres.Cluster | None) -> None:
    stack = new_stack(tmp_path, backend, pg_cluster)
    stack.start()
    try:
        members = [uid("u") for _ in range(10)]
        thread = uid("t")
        texts = ["车机今天又卡了一次,重启才好", "请问冬天续航大概打几折?", "谢谢解答,学到了", "欢迎新车主,有问题随时问",
                 "时速80以上左后门有风噪", "建议在app里提报修工单,附上视频"]
        posts = [post(f"{thread}-{i}", thread_id=f"{thread}-{i % 7}", author_id=members[i % 10],
                      content=f"{texts[i % len(texts)]} #{i}") for i in range(3000)]
        killed = threading.Event()
        processed_at_kill: list[float] = []
        headers = {"Authorization": f"Bearer {stack.token}"}

        def send() -> None:
            with httpx.Client(headers=headers, timeout=30) as c:
                for start in range(0, len(posts), 100):
                    assert c.post(f"{stack.url('ingest')}/v1/posts",
                                  json={"posts": posts[start:start + 100]}).status_code == 202
                    if start == 1000:
                        # Kill only once the victim is consuming, while records are still in flight to it.
                        processed_at_kill.append(eventually(lambda: _processed(stack.url(victim)), timeout=60))
                        stack.children[victim].kill()
                        killed.set()

        sender = threading.Thread(target=send)
        sender.start()
        assert killed.wait(60)
        sender.join(120)
        assert 0 < processed_at_kill[0] < len(posts)
        stack.start_service(victim)

        with httpx.Client(headers=headers, timeout=30) as c:
            def all_counted() -> dict[str, int] | None:
                counts = {}
                for m in members:
                    r = c.get(f"{stack.url('recognition')}/v1/members/{m}")
                    counts[m] = r.json()["posts"] if r.status_code == 200 else 0
                return counts if sum(counts.values()) >= len(posts) else None

            counts = eventually(all_counted, timeout=120, interval=0.5)
            assert counts == Counter(p["author_id"] for p in posts)
            for p in posts[::250]:
                assert visible(c, stack.url("recognition"), p["post_id"]) is not None
            # Re-sending everything after the crash changes nothing: all duplicates.
            again = c.post(f"{stack.url('ingest')}/v1/posts", json={"posts": posts[:1000]}).json()
            assert again == {"accepted": 0, "duplicates": 1000}
    finally:
        stack.stop()


def test_readiness_is_503_while_kafka_or_database_is_unreachable(tmp_path: Path) -> None:
    from devstack import processes

    port = processes.free_port()
    dead_kafka = f"127.0.0.1:{processes.free_port()}"
    child = processes.service("recognition", port=port, bootstrap=dead_kafka, tokens=[],
                              database_url=f"postgresql://nobody@127.0.0.1:{processes.free_port()}/none",
                              log_path=tmp_path / "recognition.log")
    child.start()
    try:
        processes.wait_for_port(port, timeout=30, proc=child.proc)
        body = eventually(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz"), timeout=10)
        assert body.status_code == 503
        assert body.json()["checks"]["kafka"] is False
        assert body.json()["checks"]["database"] is False
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        child.stop()
