"""Privacy of the people Anchor scores: wellbeing opt-out, the audit trail of burnout-risk reads, deletion of a
member from every service, and logs free of content and member ids.

Stack tests run on the shared stack (real broker, the three services, SQLite and PostgreSQL); the rule tests
write timelines into recognition's real database through its own write path."""

import asyncio
import itertools
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, text
from sqlmodel import col, select

from devstack.stack import Stack
from ingest.models import AcceptedPost, AcceptedReaction
from recognition import audit_trail, models, privacy, service, watch
from recognition.config import RecognitionSettings
from recognition.models import Acknowledgement, Member, WellbeingOptOut
from recognition.schemas import AcknowledgementIn
from shared import db, kafka, topics
from shared.errors import AnchorError
from shared.events import ParentRef, PostEvent
from shared.members import MemberDeleted, member_key
from tests.conftest import READER_TOKEN
from tests.helpers import eventually, post, read_topic, uid, visible
from tests.recognition_timeline import AS_OF, ZONE, Timeline, answer, asked, days_ago

SETTINGS = RecognitionSettings()


# --- helpers --------------------------------------------------------------------------------------------------

def _overworked(t: Timeline, member: str, *, now: datetime) -> None:
    """Ten answers to newcomers over the last month, four of them met with accusations of bias: high risk."""
    for i in range(10):
        q = t.post(t.member(f"{member}-nb{i}"), ["newcomer_question"], at=days_ago(25 - 2 * i, anchor=now),
                   title="新手求助", content="刚提车,请问胎压多少合适?")
        a = t.post(member, ["newcomer_answer"], at=days_ago(25 - 2 * i, anchor=now) + timedelta(minutes=15),
                   thread=t.thread_of(q), reply_to=q, content="看B柱上的标签,冷胎2.5左右就行,别担心")
        if i < 4:
            t.post(t.member(f"{member}-troll{i}"), ["bias_accusation", "hostility"], at=days_ago(6 - i, anchor=now),
                   thread=t.thread_of(q), reply_to=a, content="收了多少钱来洗地?")


def _labor_counted(client: httpx.Client, base: str, member: str, n: int = 10) -> bool:
    r = client.get(f"{base}/v1/members/{member}")
    return r.status_code == 200 and r.json()["labor"]["newcomer_answer"] == n


def _listed(client: httpx.Client, base: str, **params: str) -> list[str]:
    r = client.get(f"{base}/v1/burnout-risk", params={"level": "low", "limit": "500", **params})
    assert r.status_code == 200, r.text
    return [i["member_id"] for i in r.json()["items"]]


def _ingest_engine(stack: Stack) -> Engine:
    """Ingest's own database (its tables are not exposed over HTTP)."""
    url = stack.database_urls.get("ingest") or f"sqlite:///{(stack.data_dir / 'ingest.db').resolve()}"
    return db.make_engine(url, pool_size=1)


def _ingest_rows(engine: Engine, *, author: str, post_ids: list[str], reaction_ids: list[str]
                 ) -> dict[str, Any]:
    with db.unit_of_work(engine) as session:
        by_author = session.exec(select(AcceptedPost.post_id).where(col(AcceptedPost.author_id) == author)).all()
        stmt = select(AcceptedPost).where(col(AcceptedPost.post_id).in_(post_ids))
        posts = {p.post_id: p for p in session.exec(stmt)}
        reactions = session.exec(select(AcceptedReaction.reaction_id).where(
            col(AcceptedReaction.reaction_id).in_(reaction_ids))).all()
    return {"by_author": list(by_author), "posts": posts, "reactions": list(reactions)}


def _alerts_for(stack: Stack, member: str) -> list[dict[str, Any]]:
    return [a for a in (json.loads(r.value) for r in asyncio.run(read_topic(stack.bootstrap, topics.ALERTS)))
            if a.get("member_id") == member and a["kind"] == "burnout_risk"]


# --- opt-out --------------------------------------------------------------------------------------------------

def test_opted_out_member_is_never_scored_listed_or_alerted_but_still_recognized(stack: Stack,
                                                                                 client: httpx.Client) -> None:
    base = stack.url("recognition")
    now = datetime.now(UTC)
    t = Timeline(None, uid("opt"))
    early, late = t.member("early"), t.member("late")  # opts out before their posts arrive / after being listed
    with httpx.Client(headers={"Authorization": f"Bearer {READER_TOKEN}"}, timeout=30) as reader:
        denied = reader.put(f"{base}/v1/members/{early}/wellbeing-opt-out", json={"opted_out": True})
        assert denied.status_code == 403  # admin scope
    opted = client.put(f"{base}/v1/members/{early}/wellbeing-opt-out", json={"opted_out": True})
    assert opted.status_code == 200, opted.text
    assert opted.json()["member_id"] == early and opted.json()["opted_out"] is True
    assert client.put(f"{base}/v1/members/{early}/wellbeing-opt-out", json={"opted_out": "maybe"}).status_code == 422
    assert client.put(f"{base}/v1/members/{early}/wellbeing-opt-out", json={}).status_code == 422

    _overworked(t, early, now=now)
    _overworked(t, late, now=now)
    asyncio.run(t.publish(stack.bootstrap))
    eventually(lambda: _labor_counted(client, base, early) and _labor_counted(client, base, late))

    refused = client.get(f"{base}/v1/members/{early}/burnout-risk")
    assert refused.status_code == 404
    assert refused.json()["error"] == "opted_out" and refused.json()["fields"][0]["field"] == "member_id"
    assert early in refused.json()["message"]
    assert client.get(f"{base}/v1/members/{late}/burnout-risk").json()["level"] in ("high", "critical")

    # The community snapshot (lists about "now", gauges, alerts) leaves them out; so do on-demand lists.
    eventually(lambda: late in _listed(client, base))
    assert early not in _listed(client, base)
    assert early not in _listed(client, base, as_of=datetime.now(UTC).isoformat())
    eventually(lambda: _alerts_for(stack, late))
    assert not _alerts_for(stack, early)

    # Recognition goes on: the ledger, nominations and the thank-you draft.
    noms = client.get(f"{base}/v1/recognition/nominations", params={"award": "newcomer_mentor", "limit": 100}).json()
    assert early in [i["member_id"] for i in noms["items"]]
    assert client.get(f"{base}/v1/members/{early}").status_code == 200
    assert client.get(f"{base}/v1/members/{early}/thank-you").json()["evidence_post_ids"]
    ack = client.post(f"{base}/v1/members/{early}/acknowledgements", json={"kind": "private_thanks"})
    assert ack.status_code == 201

    # Opting out takes effect at once, also for lists served from the current snapshot.
    assert client.put(f"{base}/v1/members/{late}/wellbeing-opt-out", json={"opted_out": True}).status_code == 200
    assert client.get(f"{base}/v1/members/{late}/burnout-risk").status_code == 404
    assert late not in _listed(client, base)
    assert late not in _listed(client, base, as_of=datetime.now(UTC).isoformat())

    # And opting back in scores them again.
    assert client.put(f"{base}/v1/members/{early}/wellbeing-opt-out", json={"opted_out": False}).status_code == 200
    assert client.get(f"{base}/v1/members/{early}/burnout-risk").status_code == 200
    eventually(lambda: early in _listed(client, base))


# --- the audit trail ------------------------------------------------------------------------------------------

def test_every_burnout_risk_read_is_audited_with_the_readers_token_name(stack: Stack, client: httpx.Client) -> None:
    base = stack.url("recognition")
    now = datetime.now(UTC)
    since = (now - timedelta(seconds=1)).isoformat()
    t = Timeline(None, uid("aud"))
    member = t.member("helper")
    _overworked(t, member, now=now)
    asyncio.run(t.publish(stack.bootstrap))
    eventually(lambda: _labor_counted(client, base, member))
    eventually(lambda: member in _listed(client, base))  # the snapshot has them (an audited list read)

    asked_at = (now - timedelta(days=1)).isoformat()
    assert client.get(f"{base}/v1/members/{member}/burnout-risk", params={"as_of": asked_at}).status_code == 200
    assert client.get(f"{base}/v1/members/{member}/burnout-risk").status_code == 200
    listed = client.get(f"{base}/v1/burnout-risk", params={"level": "low", "limit": 500}).json()["items"]
    on_demand = client.get(f"{base}/v1/burnout-risk", params={"level": "high", "limit": 500, "as_of": asked_at})
    assert on_demand.status_code == 200
    unknown = uid("nobody")
    assert client.get(f"{base}/v1/members/{unknown}/burnout-risk").status_code == 404  # nothing disclosed

    with httpx.Client(headers={"Authorization": f"Bearer {READER_TOKEN}"}, timeout=30) as reader:
        assert reader.get(f"{base}/v1/audit/wellbeing-reads").status_code == 403
        assert reader.get(f"{base}/v1/members/{member}/burnout-risk").status_code == 403
    trail = client.get(f"{base}/v1/audit/wellbeing-reads", params={"since": since, "limit": 10000})
    assert trail.status_code == 200, trail.text
    assert not trail.json()["truncated"]
    rows = trail.json()["items"]
    mine = [r for r in rows if r["member_id"] == member]
    singles = [r for r in mine if r["endpoint"] == "member"]
    assert len(singles) == 2 and all(r["reader"] == "dev" for r in singles)  # the token's name, never the token
    assert sorted(r["as_of"] is None for r in singles) == [False, True]
    assert next(r for r in singles if r["as_of"])["as_of"].startswith(asked_at[:19])
    assert all(r["read_at"] >= since[:19] for r in mine)
    # A list read writes one row per member it returned, all with the read's id.
    last_list = [r for r in rows if r["read_id"] == next(
        r for r in reversed(rows) if r["endpoint"] == "list" and r["as_of"] is None)["read_id"]]
    assert sorted(r["member_id"] for r in last_list) == sorted(i["member_id"] for i in listed)
    assert {r["endpoint"] for r in last_list} == {"list"}
    assert len([r for r in mine if r["endpoint"] == "list"]) >= 3
    assert not [r for r in rows if r["member_id"] == unknown]
    assert stack.token not in trail.text and READER_TOKEN not in trail.text
    if "recognition" not in stack.database_urls:  # SQLite: the trail is a file of its own, beside the ledger's
        audit = sqlite3.connect(stack.data_dir / "recognition-audit.db")
        ledger = sqlite3.connect(stack.data_dir / "recognition.db")
        try:
            stored = audit.execute("SELECT count(*) FROM rec_wellbeing_reads WHERE member_id = ?", (member,))
            assert stored.fetchone()[0] == len(mine)
            tables = {name for (name,) in ledger.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert "rec_posts" in tables and "rec_wellbeing_reads" not in tables
        finally:
            audit.close()
            ledger.close()

    bad = client.get(f"{base}/v1/audit/wellbeing-reads", params={"since": now.isoformat(),
                                                               "until": (now - timedelta(days=1)).isoformat()})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "since"


# --- deletion through the stack -------------------------------------------------------------------------------

def test_deleted_member_is_removed_from_every_service(stack: Stack, client: httpx.Client) -> None:
    ingest, base = stack.url("ingest"), stack.url("recognition")
    x, b, c = uid("gone"), uid("asker"), uid("helper")
    t1, t2 = uid("t"), uid("t")
    qb = post(uid("p"), thread_id=t1, author_id=b, content="刚提车,请问冬天胎压打多少合适?",
              created_at="2026-03-01T20:00:00+08:00")
    xa = post(uid("p"), thread_id=t1, author_id=x, reply_to=qb["post_id"],
              content="看B柱上的标签,冷胎2.5左右就行,别担心", created_at="2026-03-01T20:05:00+08:00")
    bt = post(uid("p"), thread_id=t1, author_id=b, reply_to=xa["post_id"],
              content="太感谢了!按你说的调到2.5,胎压灯终于灭了,谢谢大佬", created_at="2026-03-01T20:30:00+08:00")
    xq = post(uid("p"), thread_id=t2, author_id=x, content="新手求助,自动驻车在哪里打开?",
              created_at="2026-03-02T09:00:00+08:00")
    ca = post(uid("p"), thread_id=t2, author_id=c, reply_to=xq["post_id"],
              content="别着急,在中控屏设置-驾驶辅助里面,把自动驻车那个开关打开就行",
              created_at="2026-03-02T09:10:00+08:00")
    rb = {"reaction_id": uid("r"), "post_id": xa["post_id"], "from_author_id": b, "kind": "thanks",
          "created_at": "2026-03-01T20:31:00+08:00"}
    rx = {"reaction_id": uid("r"), "post_id": ca["post_id"], "from_author_id": x, "kind": "like",
          "created_at": "2026-03-02T09:20:00+08:00"}
    assert client.post(f"{ingest}/v1/posts", json={"posts": [qb, xa, bt, xq, ca]}).json()["accepted"] == 5
    assert client.post(f"{ingest}/v1/reactions", json={"reactions": [rb, rx]}).json()["accepted"] == 2

    def ready() -> dict[str, Any] | None:
        r = client.get(f"{base}/v1/members/{x}")
        body = r.json() if r.status_code == 200 else None
        done = body and body["posts"] == 2 and body["received"]["gratitude"] == 1 and body["received"]["reactions"] == 1
        helper = client.get(f"{base}/v1/members/{c}").json()
        helped = helper.get("received", {}).get("reactions") == 1 and helper["labor"]["newcomer_answer"] == 1
        return body if done and helped else None

    eventually(ready)
    assert client.get(f"{base}/v1/members/{x}/burnout-risk").status_code == 200  # leaves an audit row
    assert visible(client, base, ca["post_id"])["target_author_id"] == x

    with httpx.Client(headers={"Authorization": f"Bearer {READER_TOKEN}"}, timeout=30) as reader:
        assert reader.delete(f"{base}/v1/members/{x}").status_code == 403
        assert reader.delete(f"{ingest}/v1/members/{x}").status_code == 403
    accepted = client.delete(f"{base}/v1/members/{x}")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["member_id"] == x and accepted.json()["event_id"]

    # Recognition: at once.
    assert client.get(f"{base}/v1/members/{x}").status_code == 404
    assert client.get(f"{base}/v1/members/{x}/thank-you").status_code == 404
    assert client.get(f"{base}/v1/posts/{xa['post_id']}").status_code == 404
    assert client.get(f"{base}/v1/posts/{xq['post_id']}").status_code == 404
    # Replies by others are their content: kept, but no longer received by the deleted member.
    for reply in (bt, ca):
        kept = client.get(f"{base}/v1/posts/{reply['post_id']}")
        assert kept.status_code == 200 and kept.json()["target_author_id"] is None
    helper = client.get(f"{base}/v1/members/{c}").json()
    assert helper["received"]["reactions"] == 0  # the deleted member's like is gone
    assert helper["labor"]["newcomer_answer"] == 1  # the help given in their thread still counts
    trail = client.get(f"{base}/v1/audit/wellbeing-reads", params={"limit": 10000}).json()["items"]
    assert not [r for r in trail if r["member_id"] == x]
    assert x not in _listed(client, base)

    # Ingest: through the event on koc.members.v1.
    engine = _ingest_engine(stack)
    try:
        ids = [p["post_id"] for p in (qb, xa, bt, xq, ca)]

        def ingest_clean() -> dict[str, Any] | None:
            rows = _ingest_rows(engine, author=x, post_ids=ids, reaction_ids=[rb["reaction_id"], rx["reaction_id"]])
            return rows if not rows["by_author"] and not rows["reactions"] else None

        rows = eventually(ingest_clean)
        assert set(rows["posts"]) == {qb["post_id"], bt["post_id"], ca["post_id"]}
        for reply in (bt, ca):  # the copy of the deleted post's text carried as reply context is gone
            stored = rows["posts"][reply["post_id"]]
            assert PostEvent.model_validate_json(stored.payload).parent is None
            assert x not in stored.payload and xa["content"] not in stored.payload
        # A re-sent post or reaction of theirs is a duplicate: not stored, not published.
        assert client.post(f"{ingest}/v1/posts", json={"posts": [xa]}).json() == {"accepted": 0, "duplicates": 1}
        assert client.post(f"{ingest}/v1/reactions", json={"reactions": [rx]}).json() == {"accepted": 0,
                                                                                          "duplicates": 1}
        assert not _ingest_rows(engine, author=x, post_ids=[], reaction_ids=[rx["reaction_id"]])["by_author"]
    finally:
        engine.dispose()

    # A classified post of theirs still in flight on Kafka is dropped, not stored again.
    late = Timeline(None, uid("late"))
    in_flight = late.post(x, ["newcomer_answer"], at=datetime.now(UTC) - timedelta(hours=1), content="飞行中的帖子")
    marker = late.post(c, ["welcome"], at=datetime.now(UTC) - timedelta(minutes=30),
                       thread=late.thread_of(in_flight), content="欢迎欢迎")
    asyncio.run(late.publish(stack.bootstrap))
    eventually(lambda: visible(client, base, marker))  # same thread, same partition: processed after it
    assert client.get(f"{base}/v1/posts/{in_flight}").status_code == 404
    assert client.get(f"{base}/v1/members/{x}").status_code == 404


def test_deletion_accepted_by_ingest_reaches_recognition(stack: Stack, client: httpx.Client) -> None:
    ingest, base = stack.url("ingest"), stack.url("recognition")
    y = uid("gone")
    p = post(uid("p"), thread_id=uid("t"), author_id=y, content="刚提车,请问冬天胎压打多少合适?")
    assert client.post(f"{ingest}/v1/posts", json={"posts": [p]}).json()["accepted"] == 1
    eventually(lambda: visible(client, base, p["post_id"]))
    accepted = client.delete(f"{ingest}/v1/members/{y}")
    assert accepted.status_code == 202, accepted.text
    engine = _ingest_engine(stack)
    try:  # applied by ingest at once
        assert not _ingest_rows(engine, author=y, post_ids=[p["post_id"]], reaction_ids=[])["posts"]
    finally:
        engine.dispose()
    eventually(lambda: client.get(f"{base}/v1/members/{y}").status_code == 404)
    assert client.get(f"{base}/v1/posts/{p['post_id']}").status_code == 404
    # Deleting again (or a member no service knows) is accepted: deletion is idempotent.
    assert client.delete(f"{base}/v1/members/{y}").status_code == 202
    assert client.delete(f"{base}/v1/members/{uid('never')}").status_code == 202


# --- logs -----------------------------------------------------------------------------------------------------

def _log_lines(stack: Stack, offsets: dict[str, int]) -> list[dict[str, Any]]:
    lines = []
    for name, start in offsets.items():
        with open(stack.data_dir / "logs" / f"{name}.log", "rb") as f:
            f.seek(start)
            for raw in f.read().decode("utf-8", "replace").splitlines():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    lines.append({"level": "info", "msg": raw})  # anything not JSON is checked too
    return lines


def test_logs_carry_neither_post_content_nor_member_ids(stack: Stack, client: httpx.Client) -> None:
    services = ("ingest", "classifier", "recognition")
    offsets = {name: Path(stack.data_dir / "logs" / f"{name}.log").stat().st_size for name in services}
    ingest, base = stack.url("ingest"), stack.url("recognition")
    member, other, marker = uid("secretmember"), uid("secretother"), uid("secretcontent")
    content = f"私密内容{marker}:刚提车,请问冬天胎压打多少合适?"
    question = post(uid("p"), thread_id=uid("t"), author_id=member, content=content)
    reply = post(uid("p"), thread_id=question["thread_id"], author_id=other, reply_to=question["post_id"],
                 content=f"回复{content}", created_at="2026-03-01T20:30:00+08:00")
    assert client.post(f"{ingest}/v1/posts", json={"posts": [question, reply]}).status_code == 202
    eventually(lambda: visible(client, base, reply["post_id"]))
    for path in (f"/v1/members/{member}", f"/v1/members/{member}/burnout-risk", f"/v1/members/{member}/thank-you"):
        assert client.get(f"{base}{path}").status_code == 200
    bad = dict(question, content=content, created_at="not a time")
    assert client.post(f"{ingest}/v1/posts", json={"posts": [bad]}).status_code == 422

    async def poison() -> None:  # records that fail validation are dead-lettered with a logged reason
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            invalid = {**question, "post_id": uid("p"), "classification": {"labels": ["not-a-label"]}}
            await producer.send_and_wait(topics.CLASSIFIED, key=b"k", value=json.dumps(invalid).encode())
            await producer.send_and_wait(topics.MEMBER_EVENTS, key=member.encode(), value=json.dumps(
                {"kind": "member_deleted", "member_id": member, "requested_at": content}).encode())
        finally:
            await producer.stop()

    asyncio.run(poison())
    assert client.delete(f"{base}/v1/members/{member}").status_code == 202

    def logged() -> list[dict[str, Any]] | None:
        lines = _log_lines(stack, offsets)
        deleted = [x for x in lines if x.get("msg") == "member deleted"]
        dead = [x for x in lines if x.get("msg") == "dead-lettering record"]
        # Deleted in recognition (request and consumer) and in ingest; both poison records dead-lettered.
        return lines if len({x.get("service") for x in deleted}) == 2 and len(dead) >= 2 else None

    lines = eventually(logged)
    at_info = [x for x in lines if str(x.get("level", "info")).lower() in ("info", "warning", "error", "critical")]
    text_logged = "\n".join(json.dumps(x, ensure_ascii=False) for x in at_info)
    assert at_info
    for secret in (member, other, marker, content, reply["content"]):
        assert secret not in text_logged


# --- the rules, on recognition's real database ----------------------------------------------------------------

_counter = itertools.count()


@pytest.fixture
def t(engine: Engine) -> Timeline:
    return Timeline(engine, f"v{next(_counter)}")


def read(engine: Engine, fn, **kw):  # type: ignore[no-untyped-def]
    with db.unit_of_work(engine) as session:
        return fn(session=session, **kw)


def test_deletion_rules(t: Timeline) -> None:
    assert t.engine is not None
    x, helper, newbie, troll = t.member("x"), t.member("helper"), t.member("newbie"), t.member("troll")
    question = asked(t, x, at=days_ago(10))  # the thread they opened
    helped = answer(t, helper, question, at=days_ago(10) + timedelta(minutes=5))
    thanks = t.post(x, ["gratitude"], at=days_ago(9), thread=t.thread_of(question), reply_to=helped,
                    content="谢谢大佬")
    newbie_q = asked(t, newbie, at=days_ago(8))
    x_answer = answer(t, x, newbie_q, at=days_ago(8) + timedelta(minutes=5))
    thanked_x = t.post(newbie, ["gratitude"], at=days_ago(7), thread=t.thread_of(newbie_q), reply_to=x_answer,
                       content="谢谢你")
    attacked_x = t.post(troll, ["hostility"], at=days_ago(6), thread=t.thread_of(question), reply_to=thanks,
                        content="滚")
    t.reaction(helped, x, "like", at=days_ago(9))
    t.reaction(x_answer, newbie, "thanks", at=days_ago(7))
    t.flush()
    read(t.engine, service.acknowledge, member_id=x, body=AcknowledgementIn(kind="gift", created_at=days_ago(5)),
         recorded_by="test", now=days_ago(5))
    read(t.engine, service.set_opt_out, member_id=x, opted_out=True, by="test", now=days_ago(5))

    before = read(t.engine, service.member_view, member_id=x, as_of=AS_OF, daily_cap=12)
    assert (before.posts, before.received.gratitude, before.received.hostility, before.received.reactions,
            before.acknowledgements) == (3, 1, 1, 1, 1)
    h = read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12)
    assert (h.labor["newcomer_answer"], h.received.gratitude, h.received.reactions) == (1, 1, 1)

    requested = datetime.now(UTC)
    deletion = MemberDeleted(member_id=x, requested_at=requested, event_id="e1")
    for _ in range(2):  # a redelivered deletion changes nothing more
        read(t.engine, service.delete_member, deletion=deletion, now=requested)

    with pytest.raises(AnchorError) as gone:
        read(t.engine, service.member_view, member_id=x, as_of=AS_OF, daily_cap=12)
    assert gone.value.status_code == 404
    for post_id in (question, thanks, x_answer):
        with pytest.raises(AnchorError):
            read(t.engine, service.post_view, post_id=post_id)
    h = read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12)
    # Their thanks and their like are gone; the help given in the thread they opened still counts.
    assert (h.labor["newcomer_answer"], h.received.gratitude, h.received.reactions) == (1, 0, 0)
    for kept in (thanked_x, attacked_x):
        assert read(t.engine, service.post_view, post_id=kept).target_author_id is None
    with db.unit_of_work(t.engine) as session:
        assert not session.exec(select(Acknowledgement).where(col(Acknowledgement.member_id) == x)).all()
        assert session.get(WellbeingOptOut, x) is None and session.get(Member, x) is None
        assert privacy.tombstones(session, [x, helper]) == {x: requested}

    # In flight or replayed: their posts and reactions from before the deletion are dropped; a reply to their
    # deleted post that still carries its author as context is kept, directed at no one.
    late = Timeline(t.engine, t.prefix + "-late")
    replayed = late.post(x, ["newcomer_answer"], at=days_ago(4), thread=t.thread_of(newbie_q), reply_to=newbie_q)
    reply = late.post(newbie, ["gratitude"], at=days_ago(3), thread=t.thread_of(newbie_q), reply_to=x_answer)
    late.events[-1] = late.events[-1].model_copy(update={"parent": ParentRef(
        post_id=x_answer, author_id=x, content="设置→车辆→驾驶里就能改")})
    late.reaction(helped, x, "thanks", at=days_ago(3))
    fresh = late.post(x, ["welcome"], at=requested + timedelta(minutes=1), thread=t.thread_of(newbie_q))
    service._write(t.engine, late.events, late.reactions, ZONE)
    with pytest.raises(AnchorError):
        read(t.engine, service.post_view, post_id=replayed)
    assert read(t.engine, service.post_view, post_id=reply).target_author_id is None
    assert read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12).received.reactions == 0
    # A post written after the deletion was requested is new content.
    assert read(t.engine, service.post_view, post_id=fresh).author_id == x
    read(t.engine, service.delete_member, deletion=deletion, now=datetime.now(UTC))
    assert read(t.engine, service.post_view, post_id=fresh).author_id == x


def test_opted_out_member_is_left_out_of_scores_lists_health_and_the_snapshot(t: Timeline) -> None:
    assert t.engine is not None
    now = datetime.now(UTC)
    out, scored = t.member("out"), t.member("scored")
    _overworked(t, out, now=now)
    _overworked(t, scored, now=now)
    t.flush()
    read(t.engine, service.set_opt_out, member_id=out, opted_out=True, by="test", now=now)
    with pytest.raises(AnchorError) as refused:
        read(t.engine, service.burnout_risk, settings=SETTINGS, member_id=out, as_of=now)
    assert (refused.value.status_code, refused.value.code, refused.value.field) == (404, "opted_out", "member_id")
    assert read(t.engine, service.burnout_risk, settings=SETTINGS, member_id=scored, as_of=now).level in (
        "high", "critical")
    listed = read(t.engine, service.burnout_list, settings=SETTINGS, level="low", limit=500, as_of=now)
    assert scored in [i.member_id for i in listed.items] and out not in [i.member_id for i in listed.items]
    snap = watch.compute(t.engine, SETTINGS, now)
    ranked = [member for member, _ in snap.ranked]
    assert scored in ranked and out not in ranked
    assert sum(snap.levels.values()) == len(read(t.engine, service.assessments, settings=SETTINGS, as_of=now))
    desired = watch.desired_states(snap, {})
    assert f"risk:{scored}" in desired["burnout_risk"] and f"risk:{out}" not in desired["burnout_risk"]
    # Recognition goes on.
    assert read(t.engine, service.member_view, member_id=out, as_of=now, daily_cap=12).labor["newcomer_answer"] == 10
    noms = read(t.engine, service.nominations, settings=SETTINGS, award="newcomer_mentor",
                since=now - timedelta(days=365), until=now, limit=100)
    assert out in [n.member_id for n in noms.items]


def test_a_read_that_cannot_be_audited_fails(tmp_path: Path) -> None:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'recognition.db'}")
    db.create_schema(eng, models.SQLModel.metadata)
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE rec_wellbeing_reads"))
    disclosed = []

    def work(session: object) -> tuple[str, list[str]]:
        disclosed.append(True)
        return "risk of m1", ["m1"]

    async def read(work: Any) -> str:
        trail = audit_trail.AuditTrail(eng)
        try:
            return await audit_trail.audited(trail, eng, work, reader="dev", endpoint="member", as_of=None)
        finally:
            await trail.close()

    with pytest.raises(AnchorError) as refused:
        asyncio.run(read(work))
    assert refused.value.status_code == 503 and refused.value.code == "audit_unavailable"
    assert disclosed  # computed, but never returned
    # Nothing disclosed (an empty list) needs no audit row.
    assert asyncio.run(read(lambda session: ("empty", []))) == "empty"
    eng.dispose()


def test_who_must_be_dropped_from_a_list_computed_earlier(t: Timeline) -> None:
    """A risk list served from the snapshot drops the members who opted out or were deleted after it was taken:
    `hidden_since` names exactly those (deleted ones by digest only), and not the ones who opted back in."""
    assert t.engine is not None
    early, late, back, gone_early, gone_late, lagging = (t.member(n) for n in ("early", "late", "back", "ge", "gl",
                                                                                "lag"))
    taken = datetime.now(UTC) - timedelta(minutes=5)
    for member, at in ((early, taken - timedelta(minutes=1)), (late, taken + timedelta(minutes=1)),
                       (back, taken + timedelta(minutes=1))):
        read(t.engine, service.set_opt_out, member_id=member, opted_out=True, by="test", now=at)
    read(t.engine, service.set_opt_out, member_id=back, opted_out=False, by="test", now=taken + timedelta(minutes=2))
    for member, at in ((gone_early, taken - timedelta(minutes=1)), (gone_late, taken + timedelta(minutes=1))):
        read(t.engine, service.delete_member, deletion=MemberDeleted(member_id=member, requested_at=at,
                                                                     event_id=uid("e")), now=at)
    # Requested long before the list was computed, but applied here after it (the event arrived late).
    read(t.engine, service.delete_member, deletion=MemberDeleted(member_id=lagging, requested_at=taken - timedelta(
        days=1), event_id=uid("e")), now=taken + timedelta(minutes=1))
    with db.unit_of_work(t.engine) as session:
        opted, deleted = privacy.hidden_since(session, since=taken)
    assert late in opted and early not in opted and back not in opted
    assert member_key(gone_late) in deleted and member_key(lagging) in deleted and member_key(gone_early) not in deleted
    assert gone_late not in deleted  # ids are never stored


def test_alert_bookkeeping_keeps_off_the_threads_requests_read_on(t: Timeline, stack: Stack) -> None:
    """A snapshot's alert claims are database work, one per subject that moves; they run on the watcher's own
    thread, so a snapshot that moves many subjects never holds the pool the requests' reads wait for."""
    assert t.engine is not None
    member = t.member("alerted")
    _overworked(t, member, now=datetime.now(UTC))
    t.flush()
    snap = watch.compute(t.engine, SETTINGS, datetime.now(UTC))
    assert f"risk:{member}" in watch.desired_states(snap, {})["burnout_risk"]

    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, *args: Any, **kwargs: Any) -> Any:
            Counting.submitted += 1
            return super().submit(*args, **kwargs)

    async def run() -> int:
        asyncio.get_running_loop().set_default_executor(Counting(max_workers=2))
        settings = RecognitionSettings.model_validate({"kafka": {"bootstrap_servers": stack.bootstrap}})
        producer = kafka.ManagedProducer(settings.kafka, client_id="test-alerts", create_topics=True)
        producer.start()
        watcher = watch.Watcher(engine=t.engine, producer=producer, settings=settings)
        try:
            await asyncio.wait_for(producer.started.wait(), 30)
            Counting.submitted = 0  # what connecting may have needed is not the alerts' work
            return await watcher.alert(snap)
        finally:
            await watcher.stop()
            await producer.stop()

    assert asyncio.run(run()) >= 1
    assert Counting.submitted == 0
    assert _alerts_for(stack, member)
