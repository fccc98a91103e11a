"""Faults under a running stream, on the real broker, services and databases.

- a consumer SIGKILLed mid-batch (ingest's member deletions, the classifier, recognition) loses nothing and counts
  nothing twice;
- poison, alone or as a burst interleaved with healthy records, is dead-lettered with its origin and a reason while
  the healthy records flow;
- readiness is 503 while Kafka or the database is unreachable;
- the database going away mid-stream pauses the consumers (nothing dead-lettered, no offset committed past what is
  stored) and they catch up when it returns;
- the broker restarting empty: the services reconnect, recreate the topics and are ready again, unrestarted;
- a slow (locked) database: reads fail with a 503 within the statement timeout instead of hanging, writes retry,
  and everything recovers when the lock goes.
"""

import asyncio
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from devstack import postgres, processes
from devstack.stack import Stack
from shared import db, members, topics
from shared.events import PostEvent, new_envelope
from tests.conftest import BACKENDS, new_stack
from tests.helpers import eventually, post, read_topic, uid, visible

TEXTS = ["车机今天又卡了一次,重启才好", "请问冬天续航大概打几折?", "谢谢解答,学到了", "欢迎新车主,有问题随时问",
         "时速80以上左后门有风噪", "建议在app里提报修工单,附上视频"]


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _posts(prefix: str, authors: list[str], n: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [post(f"{prefix}-{i}", thread_id=f"{prefix}-t{i % 7}", author_id=authors[i % len(authors)],
                 content=f"{TEXTS[i % len(TEXTS)]} #{i}") for i in range(start, start + n)]


def _auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def _send(client: httpx.Client, ingest: str, posts: list[dict[str, Any]], *, batch: int = 100,
          patience_s: float = 120.0) -> Counter[str]:
    """Sends `posts` the way a patient client does: a batch refused with 429 or 503, or cut off (the service is
    down), is sent again until accepted. Returns every answer seen (status codes, transport error names)."""
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + patience_s
    for start in range(0, len(posts), batch):
        while True:
            try:
                response = client.post(f"{ingest}/v1/posts", json={"posts": posts[start:start + batch]})
                seen[str(response.status_code)] += 1
                if response.status_code == 202:
                    break
                if response.status_code not in (429, 503):
                    raise AssertionError(f"unexpected answer {response.status_code}: {response.text}")
            except httpx.TransportError as exc:
                seen[type(exc).__name__] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"posts not accepted after {patience_s}s; answers: {dict(seen)}")
            time.sleep(0.2)
    return seen


def _metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 when the service does not answer)."""
    try:
        body = httpx.get(f"{base_url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return sum(sample.value for family in text_string_to_metric_families(body) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def _processed(base_url: str) -> float:
    return _metric(base_url, "anchor_consumer_messages_processed_total")


def _readyz(base_url: str) -> tuple[int, dict[str, bool]]:
    try:
        response = httpx.get(f"{base_url}/readyz", timeout=10)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json().get("checks", {})


def _unready(base_url: str, check: str, *, timeout: float = 15) -> dict[str, bool]:
    """Waits until /readyz answers 503 with `check` false; returns the checks."""
    def probe() -> dict[str, bool] | None:
        status, checks = _readyz(base_url)
        return checks if status == 503 and checks.get(check) is False else None

    return eventually(probe, timeout=timeout)  # type: ignore[no-any-return]


def _counts(client: httpx.Client, recognition: str, authors: list[str]) -> dict[str, int]:
    counts = {}
    for author in authors:
        response = client.get(f"{recognition}/v1/members/{author}")
        counts[author] = response.json()["posts"] if response.status_code == 200 else 0
    return counts


def _all_counted(client: httpx.Client, recognition: str, posts: list[dict[str, Any]], *,
                 timeout: float = 120) -> dict[str, int]:
    """Waits until recognition holds as many posts per author as were sent, then returns its counts."""
    expected = Counter(p["author_id"] for p in posts)
    authors = sorted(expected)
    return eventually(lambda: (c := _counts(client, recognition, authors)) and sum(c.values()) >= len(posts) and c,
                      timeout=timeout, interval=0.5)


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> list[Any]:
    """Sends (key, value) records in order; returns their metadata (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in records]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


def _publish_deletions(bootstrap: str, member_ids: list[str]) -> dict[int, int]:
    """Member deletions straight onto koc.members.v1, as `DELETE /v1/members/{id}` publishes them. Returns the
    first offset they took in each partition."""
    now = datetime.now(UTC)
    events = [members.MemberDeleted(member_id=m, requested_at=now, event_id=uid("ev"), requested_by="fault-test")
              for m in member_ids]
    metas = asyncio.run(_produce(bootstrap, topics.MEMBER_EVENTS,
                                 [(e.member_id.encode(), e.model_dump_json().encode()) for e in events]))
    first: dict[int, int] = {}
    for meta in metas:
        first[meta.partition] = min(meta.offset, first.get(meta.partition, meta.offset))
    return first


async def _deadletters(bootstrap: str) -> list[dict[str, str]]:
    return [{k: v.decode() for k, v in r.headers} | {"value": (r.value or b"").decode("utf-8", "replace"),
                                                     "key": (r.key or b"").decode()}
            for r in await read_topic(bootstrap, topics.DEADLETTER)]


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """A group's committed offsets, read without joining the group (so it does not rebalance)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        assert partitions, topic
        return {p: await consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions}
    finally:
        await consumer.stop()


async def _topic_partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        names = await admin.list_topics()
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)} if names else {}
    finally:
        await admin.close()


def _ingest_scalar(stack: Stack, sql: str, **params: Any) -> Any:
    """One value from ingest's own database (it has no read API)."""
    url = stack.database_urls.get("ingest") or f"sqlite:///{(stack.data_dir / 'ingest.db').resolve()}"
    engine = db.make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def _gone_everywhere(stack: Stack, client: httpx.Client, doomed: list[str]) -> None:
    """Deleted members: no post left in ingest, a tombstone each, nothing in recognition."""
    in_list = ", ".join(f"'{m}'" for m in doomed)
    eventually(lambda: _ingest_scalar(stack, "SELECT count(*) FROM ingest_deleted_members") >= len(doomed),
               timeout=60)
    assert _ingest_scalar(stack, f"SELECT count(*) FROM ingest_posts WHERE author_id IN ({in_list})") == 0
    assert _ingest_scalar(stack, "SELECT count(*) FROM ingest_deleted_members") == len(doomed)
    recognition = stack.url("recognition")
    eventually(lambda: all(client.get(f"{recognition}/v1/members/{m}").status_code == 404 for m in doomed),
               timeout=60, interval=0.5)


def _pg_bindir() -> Path:
    bindir = postgres.binaries()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not installed")
    return bindir


@contextmanager
def _running(stack: Stack) -> Iterator[Stack]:
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


# ---------------------------------------------------------------------------------------------------------------
# poison


def test_poison_messages_are_deadlettered_with_their_origin(stack: Stack, client: httpx.Client) -> None:
    key = uid("poison").encode()
    [posts_meta] = asyncio.run(_produce(stack.bootstrap, topics.POSTS, [(key, b"\xff\xfe not json at all")]))
    [classified_meta] = asyncio.run(_produce(stack.bootstrap, topics.CLASSIFIED, [(key, b'{"post_id": "x"}')]))

    def landed() -> list[dict[str, str]]:
        return [d for d in asyncio.run(_deadletters(stack.bootstrap)) if d["key"] == key.decode()]

    letters = eventually(lambda: len(landed()) >= 2 and landed(), timeout=30)
    by_topic = {d["source_topic"]: d for d in letters}
    assert by_topic[topics.POSTS]["source_partition"] == str(posts_meta.partition)
    assert by_topic[topics.POSTS]["source_offset"] == str(posts_meta.offset)
    assert "invalid post event" in by_topic[topics.POSTS]["error"]
    assert by_topic[topics.POSTS]["value"].endswith("not json at all")
    assert by_topic[topics.CLASSIFIED]["source_offset"] == str(classified_meta.offset)
    assert by_topic[topics.CLASSIFIED]["source_partition"] == str(classified_meta.partition)
    assert "thread_id" in by_topic[topics.CLASSIFIED]["error"]

    # The consumers went on: healthy traffic after the poison is processed.
    healthy = post(uid("p"), thread_id=uid("t"), author_id=uid("u"), content="今天提车了,开心")
    assert client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": [healthy]}).status_code == 202
    eventually(lambda: visible(client, stack.url("recognition"), healthy["post_id"]))


def _poison(i: int) -> bytes | None:
    """Records no consumer can use, of several kinds: not JSON, not UTF-8, the wrong shape, missing or wrongly
    typed fields, an empty value (a tombstone), a huge string."""
    kinds: list[bytes | None] = [
        b"not json at all", b"\xff\xfe\x00binary", b"[1, 2, 3]", b'{"post_id": "x"}', None, b"",
        b'{"post_id": 5, "thread_id": [], "author_id": null, "content": 1, "created_at": "yesterday"}',
        b'"' + b"a" * 200_000 + b'"',
    ]
    return kinds[i % len(kinds)]


def test_a_burst_of_poison_is_deadlettered_while_healthy_traffic_flows(stack: Stack, client: httpx.Client) -> None:
    """500 poison records interleaved with 400 valid ones on the posts topics (plus posts over HTTP meanwhile):
    every poison record lands in the dead-letter topic once, with its origin and a reason; every valid post is
    visible in recognition, within a bound that shows the consumers kept up."""
    tag = uid("burst")
    authors = [uid("u") for _ in range(8)]
    valid = _posts(tag, authors, 400)
    now = datetime.now(UTC)
    events = [PostEvent(**p, **new_envelope(now)) for p in valid]
    poison_key = f"{tag}-poison".encode()
    stream: list[tuple[bytes | None, bytes | None]] = []
    for i, event in enumerate(events):  # poison on the raw posts topic, between the valid events
        stream.append((event.thread_id.encode(), event.model_dump_json().encode()))
        stream.append((poison_key, _poison(i)))
    classified_poison = [(poison_key, _poison(i + 3)) for i in range(100)]  # and on the classified posts topic
    over_http = _posts(f"{tag}-http", authors, 300)

    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(_send, client, stack.url("ingest"), over_http, batch=50)
        metas = asyncio.run(_produce(stack.bootstrap, topics.POSTS, stream))
        metas += asyncio.run(_produce(stack.bootstrap, topics.CLASSIFIED, classified_poison))
        assert set(sending.result(timeout=120)) == {"202"}
    expected = {(topics.POSTS, str(m.partition), str(m.offset)) for m, (key, _) in zip(metas, stream, strict=False)
                if key == poison_key}
    expected |= {(topics.CLASSIFIED, str(m.partition), str(m.offset)) for m in metas[len(stream):]}
    assert len(expected) == 500

    # Every valid post, raw or over HTTP, is visible: the poison around them cost them nothing.
    counts = _all_counted(client, stack.url("recognition"), valid + over_http, timeout=90)
    assert counts == Counter(p["author_id"] for p in valid + over_http)
    assert time.monotonic() - started < 90

    def letters() -> list[dict[str, str]]:
        return [d for d in asyncio.run(_deadletters(stack.bootstrap)) if d["key"] == poison_key.decode()]

    found = eventually(lambda: len(ls := letters()) >= 500 and ls, timeout=60, interval=1)
    origins = [(d["source_topic"], d["source_partition"], d["source_offset"]) for d in found]
    assert set(origins) == expected
    assert len(origins) == len(expected)  # each once
    for letter in found:
        assert letter["error"], letter  # a reason on every one
        assert letter["consumer_group"] in ("anchor-classifier", "anchor-recognition")
    reasons = Counter(d["error"].split(":")[0] for d in found)
    assert set(reasons) <= {"invalid post event", "empty record value", "invalid ClassifiedPostEvent"}, reasons
    for name in ("classifier", "recognition"):
        assert _readyz(stack.url(name))[0] == 200


def test_a_threads_posts_keep_their_order_through_ingest_and_the_classifier(stack: Stack,
                                                                              client: httpx.Client) -> None:
    """Ordering per thread: events are keyed by thread id, so a thread's posts share one partition of
    koc.posts.v1 and of koc.posts.classified.v1, in the order they were accepted."""
    thread = uid("ordered")
    posts = [post(f"{thread}-{i:02d}", thread_id=thread, author_id=uid("u"), content=f"{TEXTS[i % 6]} #{i}")
             for i in range(30)]
    for start in range(0, 30, 10):
        assert set(_send(client, stack.url("ingest"), posts[start:start + 10])) == {"202"}
    eventually(lambda: visible(client, stack.url("recognition"), posts[-1]["post_id"]), timeout=60)
    sent = [p["post_id"] for p in posts]
    for topic in (topics.POSTS, topics.CLASSIFIED):
        records = [r for r in asyncio.run(read_topic(stack.bootstrap, topic)) if r.key == thread.encode()]
        assert len({r.partition for r in records}) == 1, topic
        ordered = [orjson.loads(r.value)["post_id"] for r in sorted(records, key=lambda r: r.offset)]
        assert list(dict.fromkeys(ordered)) == sent, topic  # (a redelivery may repeat one, never reorder)


# ---------------------------------------------------------------------------------------------------------------
# crashes


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("victim", ["ingest", "classifier", "recognition"])
def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
        victim: str, backend: str, tmp_path: Path, pg_cluster: postgres.Cluster | None) -> None:
    """Each service's consumer killed mid-batch: the classifier and recognition on posts, ingest on member
    deletions (one record per batch, so the kill lands between many batches), while posts are still arriving
    over HTTP (so killing ingest also cuts requests and its outbox off mid-way)."""
    stack = new_stack(tmp_path, backend, pg_cluster, extra_env={"ingest": {"INGEST_KAFKA__MAX_BATCH": "1"}})
    with _running(stack), httpx.Client(headers=_auth(stack), timeout=30) as client:
        authors = [uid("u") for _ in range(10)]
        doomed = [uid("gone") for _ in range(60)]
        posts = _posts(uid("t"), authors, 3000)
        _send(client, stack.url("ingest"), _posts(uid("d"), doomed, 120))
        killed = threading.Event()
        processed_at_kill: list[float] = []

        def send() -> Counter[str]:
            seen: Counter[str] = Counter()
            with httpx.Client(headers=_auth(stack), timeout=30) as c:
                for start in range(0, len(posts), 100):
                    seen += _send(c, stack.url("ingest"), posts[start:start + 100])
                    if start == 1000:
                        _publish_deletions(stack.bootstrap, doomed)
                        # Kill only once the victim is consuming, while records are still in flight to it.
                        processed_at_kill.append(eventually(lambda: _processed(stack.url(victim)), timeout=60,
                                                            interval=0.02))
                        stack.children[victim].kill()
                        killed.set()
            return seen

        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send)
            eventually(lambda: killed.is_set() or sending.done(), timeout=120)
            if sending.done():
                sending.result()  # raises what went wrong before the kill
            stack.start_service(victim)
            sending.result(timeout=180)
        total = len(doomed) if victim == "ingest" else len(posts)
        assert 0 < processed_at_kill[0] < total

        counts = _all_counted(client, stack.url("recognition"), posts)
        assert counts == Counter(p["author_id"] for p in posts)
        for p in posts[::250]:
            assert visible(client, stack.url("recognition"), p["post_id"]) is not None
        _gone_everywhere(stack, client, doomed)
        in_list = ", ".join(f"'{a}'" for a in authors)
        assert _ingest_scalar(stack, f"SELECT count(*) FROM ingest_posts WHERE author_id IN ({in_list})") == 3000
        # Re-sending everything after the crash changes nothing: all duplicates.
        again = client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": posts[:1000]}).json()
        assert again == {"accepted": 0, "duplicates": 1000}


# ---------------------------------------------------------------------------------------------------------------
# dependencies


def test_readiness_is_503_while_kafka_or_database_is_unreachable(tmp_path: Path) -> None:
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


def test_database_outage_mid_stream_pauses_the_consumers_and_they_catch_up(tmp_path: Path) -> None:
    """PostgreSQL (ingest's and recognition's databases) stopped while posts flow, and started again on the same
    port and data: both services turn unready (database false) and refuse or postpone work with 503s; their
    consumers pause (no dead letters, no offsets committed past unstored records) rather than drop anything;
    afterwards every post sent before, during and after the outage is in recognition exactly once."""
    cluster = postgres.Cluster(_pg_bindir())
    cluster.start()
    # A short backoff cap, so the consumers notice the database's return within seconds.
    quick = {name: {f"{name.upper()}_KAFKA__MAX_BACKOFF_S": "2"} for name in ("ingest", "recognition")}
    stack = new_stack(tmp_path, "postgresql", cluster, extra_env=quick)
    try:
        with _running(stack), httpx.Client(headers=_auth(stack), timeout=30) as client:
            ingest, recognition = stack.url("ingest"), stack.url("recognition")
            authors = [uid("u") for _ in range(8)]
            doomed = [uid("gone") for _ in range(10)]
            before, during, after = (_posts(uid(tag), authors, n) for tag, n in (("b", 900), ("d", 300), ("a", 300)))
            doomed_posts = _posts(uid("g"), doomed, 20)
            _send(client, ingest, doomed_posts)
            _all_counted(client, recognition, doomed_posts, timeout=60)
            # The classifier frozen while `before` is accepted, so its classified posts reach recognition only once
            # the database is down: the stream is certainly mid-way when the outage starts.
            stack.children["classifier"].signal(signal.SIGSTOP)
            try:
                _send(client, ingest, before)
                classified = asyncio.run(_committed(stack.bootstrap, "anchor-recognition", topics.CLASSIFIED))
                cluster.stop_server("fast")
            finally:
                stack.children["classifier"].signal(signal.SIGCONT)
            outage = time.monotonic()
            with ThreadPoolExecutor(1) as pool, httpx.Client(headers=_auth(stack), timeout=30) as other:
                # A client keeps sending meanwhile; ingest cannot store, so it answers 503 until it can.
                sending = pool.submit(_send, other, ingest, during, batch=50)
                # Records every consumer of koc.members.v1 (ingest's and recognition's) must wait on.
                deletions = _publish_deletions(stack.bootstrap, doomed)

                for name in ("ingest", "recognition"):
                    checks = _unready(stack.url(name), "database")
                    assert checks["kafka"] is True, (name, checks)
                assert _readyz(stack.url("classifier"))[0] == 200  # no database: unaffected
                # Reads fail fast and clearly instead of hanging.
                t = time.monotonic()
                read = client.get(f"{recognition}/v1/posts/{before[0]['post_id']}")
                assert read.status_code == 503 and "database" in read.json()["message"]
                assert time.monotonic() - t < 10
                # The consumers hit the outage and retry: nothing dead-lettered, nothing committed.
                eventually(lambda: _processed(stack.url("classifier")) >= len(doomed_posts) + len(before), timeout=30)
                for name in ("ingest", "recognition"):
                    eventually(lambda n=name: _metric(stack.url(n), "anchor_consumer_failures_total",
                                                      kind="transient"), timeout=20)
                time.sleep(2)
                for group in ("anchor-ingest", "anchor-recognition"):
                    committed = asyncio.run(_committed(stack.bootstrap, group, topics.MEMBER_EVENTS))
                    for partition, first in deletions.items():
                        assert committed[partition] <= first, (group, committed, deletions)  # none passed over
                # 900 classified posts wait, and the group's offsets have not moved past any of them.
                assert asyncio.run(_committed(stack.bootstrap, "anchor-recognition", topics.CLASSIFIED)) == classified
                assert not sending.done()  # every batch refused so far
                assert time.monotonic() - outage < 40

                cluster.start_server()
                back = time.monotonic()
                for name in ("ingest", "recognition"):
                    eventually(lambda n=name: _readyz(stack.url(n))[0] == 200, timeout=30)
                ready_after = time.monotonic() - back
                seen = sending.result(timeout=120)
            assert seen["503"] >= 1 and set(seen) <= {"202", "503"}, seen  # refused cleanly, never a 500
            _send(client, ingest, after)

            counts = _all_counted(client, recognition, before + during + after)
            assert counts == Counter(p["author_id"] for p in before + during + after)
            _gone_everywhere(stack, client, doomed)
            assert [d for d in asyncio.run(_deadletters(stack.bootstrap))] == []
            again = client.post(f"{ingest}/v1/posts", json={"posts": during}).json()
            assert again == {"accepted": 0, "duplicates": len(during)}
            assert ready_after < 30
    finally:
        cluster.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_broker_restart_services_reconnect_without_restarting(
        backend: str, tmp_path: Path, pg_cluster: postgres.Cluster | None) -> None:
    """The embedded broker stopped and started again on its port, empty (memory storage: topics, records and
    committed offsets gone). Every service reports kafka false meanwhile, recreates the topics, is ready again
    without a restart of its own, and posts accepted during and after the outage reach recognition."""
    stack = new_stack(tmp_path, backend, pg_cluster)
    with _running(stack), httpx.Client(headers=_auth(stack), timeout=30) as client:
        services = ("ingest", "classifier", "recognition")
        pids = {name: stack.children[name].proc.pid for name in services}  # type: ignore[union-attr]
        authors = [uid("u") for _ in range(6)]
        before, during, after = (_posts(uid(tag), authors, n) for tag, n in (("b", 200), ("d", 100), ("a", 200)))
        _send(client, stack.url("ingest"), before)
        _all_counted(client, stack.url("recognition"), before, timeout=60)

        stack.stop_broker()
        for name in services:
            _unready(stack.url(name), "kafka")
        # Ingest still accepts: the posts are durable in its database and its outbox sends them later. Once it
        # has noticed the broker is gone it does not even wait for a publication to time out.
        time.sleep(2.5)
        t = time.monotonic()
        assert set(_send(client, stack.url("ingest"), during, batch=50)) == {"202"}
        assert time.monotonic() - t < 10

        stack.start_broker(create_topics=False)  # the services recreate the topics themselves
        layout = {spec.name: spec.partitions for spec in topics.TOPICS}
        eventually(lambda: asyncio.run(_topic_partitions(stack.bootstrap)) == layout, timeout=30, interval=0.5)
        for name in services:
            eventually(lambda n=name: _readyz(stack.url(n))[0] == 200, timeout=30)
        _send(client, stack.url("ingest"), after)

        counts = _all_counted(client, stack.url("recognition"), before + during + after, timeout=90)
        assert counts == Counter(p["author_id"] for p in before + during + after)
        for name in services:
            assert stack.children[name].alive() and stack.children[name].proc.pid == pids[name]  # type: ignore[union-attr]


@contextmanager
def _locked(backend: str, stack: Stack) -> Iterator[Callable[[], None]]:
    """Holds a lock that stalls recognition's database: on PostgreSQL an exclusive lock on its posts table (reads
    and writes of it wait); on SQLite the write lock (writers wait, readers never do under WAL). Yields a function
    that releases it early."""
    conn: Any
    if backend == "postgresql":
        conn = psycopg.connect(stack.database_urls["recognition"])  # a transaction is open until rollback
        conn.execute("LOCK TABLE rec_posts IN ACCESS EXCLUSIVE MODE")
    else:
        conn = sqlite3.connect(stack.data_dir / "recognition.db", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            conn.execute("ROLLBACK")
            conn.close()
            released = True

    try:
        yield release
    finally:
        release()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_slow_database_fails_reads_within_the_timeout_and_everything_recovers(
        backend: str, tmp_path: Path, pg_cluster: postgres.Cluster | None) -> None:
    """"Downstream" of a service is its database (services never call each other over HTTP). A database that
    does not answer (a lock held by another connection) makes each read fail with a 503 within the statement
    timeout instead of hanging, makes the consumer's writes time out and retry (never dead-letter), and once the
    lock goes the reads answer and the posts sent meanwhile are all stored."""
    timeout_s = 1.5
    stack = new_stack(tmp_path, backend, pg_cluster, extra_env={"recognition": {
        "RECOGNITION_DATABASE__STATEMENT_TIMEOUT_S": str(timeout_s), "RECOGNITION_KAFKA__MAX_BACKOFF_S": "2"}})
    with _running(stack), httpx.Client(headers=_auth(stack), timeout=30) as client:
        recognition = stack.url("recognition")
        authors = [uid("u") for _ in range(4)]
        before, during = _posts(uid("b"), authors, 100), _posts(uid("d"), authors, 100)
        _send(client, stack.url("ingest"), before)
        _all_counted(client, recognition, before, timeout=60)
        failures = _metric(recognition, "anchor_consumer_failures_total", kind="transient")

        with _locked(backend, stack) as release:
            _send(client, stack.url("ingest"), during)
            for _ in range(3):
                t = time.monotonic()
                read = client.get(f"{recognition}/v1/posts/{before[0]['post_id']}")
                elapsed = time.monotonic() - t
                if backend == "postgresql":
                    assert read.status_code == 503, read.text
                    assert "statement timeout" in read.json()["message"]
                    assert read.headers["Retry-After"]
                else:
                    assert read.status_code == 200  # WAL: the writer's lock never blocks a reader
                assert elapsed < timeout_s + 5, elapsed
            # The consumer's writes wait out the timeout and are retried, not dead-lettered.
            eventually(lambda: _metric(recognition, "anchor_consumer_failures_total", kind="transient") > failures,
                       timeout=30)
            if backend == "sqlite":
                assert visible(client, recognition, during[-1]["post_id"]) is None  # not stored while locked
            release()
            t = time.monotonic()
            eventually(lambda: client.get(f"{recognition}/v1/posts/{before[0]['post_id']}").status_code == 200,
                       timeout=10)
            assert time.monotonic() - t < 10

        counts = _all_counted(client, recognition, before + during, timeout=60)
        assert counts == Counter(p["author_id"] for p in before + during)
        assert asyncio.run(_deadletters(stack.bootstrap)) == []
        eventually(lambda: _readyz(recognition)[0] == 200, timeout=30)
