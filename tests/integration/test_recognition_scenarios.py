"""Recognition's rules on timelines whose outcome is known, against the real database (SQLite and PostgreSQL).

Posts are written through recognition's own write path with chosen labels, so these tests check the ledger,
risk, awards, thank-you, topic and health rules, not the classifier."""

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import col, update

from recognition import repository, service, watch
from recognition import risk as risk_model
from recognition.config import RecognitionSettings
from recognition.models import Member
from recognition.schemas import AcknowledgementIn, DefectTopics
from shared import db
from shared.errors import AnchorError
from shared.members import MemberDeleted
from tests.recognition_timeline import AS_OF, Timeline, answer, asked, days_ago

_counter = itertools.count()


@pytest.fixture
def t(engine: Engine) -> Timeline:
    return Timeline(engine, f"s{next(_counter)}")


SETTINGS = RecognitionSettings()


def read(engine: Engine, fn, **kw):  # type: ignore[no-untyped-def]
    with db.unit_of_work(engine) as session:
        return fn(session=session, **kw)


def risk(t: Timeline, member: str, as_of: datetime = AS_OF):  # type: ignore[no-untyped-def]
    return read(t.engine, service.burnout_risk, settings=SETTINGS, member_id=member, as_of=as_of)


def labor_for(t: Timeline, helper: str, n: int, *, start: float = 28) -> list[str]:
    """`n` answers by `helper` to questions from `n` different newcomers, spread over the window."""
    answers = []
    for i in range(n):
        q = asked(t, t.member(f"newbie{i}"), at=days_ago(start - i * 2.5))
        answers.append(answer(t, helper, q, at=days_ago(start - i * 2.5) + timedelta(minutes=20)))
    return answers


def test_thanked_member_ranks_below_the_one_accused_of_bias(t: Timeline) -> None:
    thanked, accused = t.member("thanked"), t.member("accused")
    for helper in (thanked, accused):
        answers = labor_for(t, helper, 10)
        if helper == thanked:
            for i, a in enumerate(answers[:6]):
                t.post(t.member(f"newbie{i}"), ["gratitude"], at=days_ago(20 - i), thread=t.thread_of(a), reply_to=a,
                       content="谢谢大佬,解决了!")
            t.reaction(answers[0], t.member("newbie0"), "accepted_answer", at=days_ago(19))
        else:
            for i, a in enumerate(answers[:4]):
                t.post(t.member(f"troll{i}"), ["bias_accusation", "hostility"], at=days_ago(18 - i),
                       thread=t.thread_of(a), reply_to=a, content="收了多少钱来洗地?")
    t.flush()
    read(t.engine, service.acknowledge, member_id=thanked, body=AcknowledgementIn(kind="private_thanks",
         created_at=days_ago(5)), recorded_by="test", now=days_ago(5))
    r_thanked, r_accused = risk(t, thanked), risk(t, accused)
    assert r_thanked.effort == r_accused.effort > 0  # the same labor
    assert r_accused.score > r_thanked.score
    assert r_accused.level in ("high", "critical") and r_thanked.level in ("low", "elevated")
    factors = {d.factor: d for d in r_accused.drivers}
    assert {"one_sided_effort", "bias_accusations_received", "hostility_received"} <= set(factors)
    assert len(factors["bias_accusations_received"].evidence_post_ids) == 4
    actions = {a.action for a in r_accused.recommended_actions}
    assert {"private_thanks", "private_channel"} <= actions
    listed = read(t.engine, service.burnout_list, settings=SETTINGS, level="high", limit=500, as_of=AS_OF)
    ids = [i.member_id for i in listed.items]
    assert accused in ids and thanked not in ids
    assert [i.score for i in listed.items] == sorted((i.score for i in listed.items), reverse=True)


def test_an_acknowledgement_lowers_risk(t: Timeline) -> None:
    helper = t.member("helper")
    labor_for(t, helper, 10)
    t.flush()
    before = risk(t, helper)
    read(t.engine, service.acknowledge, member_id=helper, body=AcknowledgementIn(kind="public_award",
         created_at=days_ago(1)), recorded_by="test", now=days_ago(1))
    after = risk(t, helper)
    assert after.reward > before.reward
    assert after.score < before.score
    member = read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12)
    assert member.acknowledgements == 1


def test_a_retried_acknowledgement_counts_once(t: Timeline) -> None:
    helper = t.member("helper")
    labor_for(t, helper, 2)
    t.flush()
    body = AcknowledgementIn(kind="gift", acknowledgement_id=f"{t.prefix}-ack-1", created_at=days_ago(1))
    first = read(t.engine, service.acknowledge, member_id=helper, body=body, recorded_by="x", now=days_ago(1))
    again = read(t.engine, service.acknowledge, member_id=helper, body=body, recorded_by="x", now=days_ago(1))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12).acknowledgements == 1


def test_withdrawal_raises_risk(t: Timeline) -> None:
    steady, quiet = t.member("steady"), t.member("quiet")
    for member in (steady, quiet):
        # Three months of regular answering before the recent fortnight.
        for week in range(2, 16):
            q = asked(t, t.member(f"nb-{member[-5:]}-{week}"), at=days_ago(week * 7))
            for k in range(3):
                answer(t, member, q, at=days_ago(week * 7) + timedelta(hours=k + 1))
        if member == steady:
            for d in (2, 4, 6, 9, 11, 13):
                q = asked(t, t.member(f"nb-recent-{d}"), at=days_ago(d))
                answer(t, member, q, at=days_ago(d) + timedelta(hours=1))
    t.flush()
    r_steady, r_quiet = risk(t, steady), risk(t, quiet)
    assert r_quiet.score > r_steady.score
    assert "withdrawal" in {d.factor for d in r_quiet.drivers}
    assert "withdrawal" not in {d.factor for d in r_steady.drivers}
    assert "rest_reward" in {a.action for a in r_quiet.recommended_actions}


def test_self_replies_and_staff_earn_nothing(t: Timeline) -> None:
    loner, staff, asker = t.member("loner"), t.member("staff"), t.member("asker")
    own = t.post(loner, ["newcomer_question"], at=days_ago(10), title="自问自答")
    for i in range(5):
        t.post(loner, ["newcomer_answer", "empathy"], at=days_ago(10 - i * 0.1), thread=t.thread_of(own),
               reply_to=own)
    t.post(loner, ["welcome"], at=days_ago(9), thread=t.thread_of(own))  # in his own thread
    q = asked(t, asker, at=days_ago(8))
    a = answer(t, staff, q, at=days_ago(8) + timedelta(minutes=5), labels=["newcomer_answer", "redirect_official"])
    t.events[-1] = t.events[-1].model_copy(update={"author": t.events[-1].author.model_copy(  # type: ignore[union-attr]
        update={"is_official": True})})
    t.post(asker, ["gratitude"], at=days_ago(7), thread=t.thread_of(q), reply_to=a)
    t.flush()
    member = read(t.engine, service.member_view, member_id=loner, as_of=AS_OF, daily_cap=12)
    assert sum(member.labor.values()) == 0
    staff_view = read(t.engine, service.member_view, member_id=staff, as_of=AS_OF, daily_cap=12)
    assert staff_view.is_official and sum(staff_view.labor.values()) == 0
    with pytest.raises(AnchorError) as caught:
        risk(t, staff)
    assert caught.value.status_code == 404
    for award in ("community_contribution", "newcomer_mentor"):
        noms = read(t.engine, service.nominations, settings=SETTINGS, award=award, since=days_ago(60), until=AS_OF,
                    limit=100)
        assert {loner, staff}.isdisjoint({i.member_id for i in noms.items})


def test_reply_before_its_parent_is_credited_once_the_parent_arrives(t: Timeline) -> None:
    asker, helper = t.member("asker"), t.member("helper")
    q = asked(t, asker, at=days_ago(5))
    pending = t.events.pop()  # the question arrives after the answer
    answer(t, helper, q, at=days_ago(5) + timedelta(minutes=3))
    t.events[-1] = t.events[-1].model_copy(update={"parent": None})
    t.flush()
    early = read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12)
    t.events.append(pending)
    t.flush()
    late = read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12)
    assert early.labor["newcomer_answer"] == 0  # no parent, no opener: not yet known to be for someone else
    assert late.labor["newcomer_answer"] == 1


def test_daily_cap_stops_flooding(t: Timeline) -> None:
    flooder = t.member("flooder")
    for i in range(30):
        q = asked(t, t.member(f"n{i}"), at=days_ago(3, hour=10) + timedelta(minutes=i))
        answer(t, flooder, q, at=days_ago(3, hour=10) + timedelta(minutes=i, seconds=30))
    t.flush()
    member = read(t.engine, service.member_view, member_id=flooder, as_of=AS_OF, daily_cap=12)
    assert member.labor["newcomer_answer"] == 12
    assert risk(t, flooder).effort == 12.0


def test_mentor_who_answers_and_welcomes_tops_newcomer_mentor(t: Timeline) -> None:
    mentor, researcher, chatter = t.member("mentor"), t.member("researcher"), t.member("chatter")
    for i in range(6):
        q = asked(t, t.member(f"nb{i}"), at=days_ago(40 - i * 5))
        a = answer(t, mentor, q, at=days_ago(40 - i * 5) + timedelta(minutes=10))
        t.post(t.member(f"nb{i}"), ["gratitude"], at=days_ago(40 - i * 5) + timedelta(hours=1),
               thread=t.thread_of(q), reply_to=a)
        t.post(mentor, ["welcome"], at=days_ago(39 - i * 5), thread=t.thread_of(q), reply_to=q,
               content="欢迎新车主,有问题随时问")
    for i in range(3):
        q = asked(t, t.member(f"nc{i}"), at=days_ago(30 - i))
        answer(t, chatter, q, at=days_ago(30 - i) + timedelta(minutes=30))
    flaw = t.post(t.member("owner"), ["defect_report"], at=days_ago(20), title="车机卡顿", component="infotainment")
    for i in range(4):
        t.post(researcher, ["defect_hypothesis", "defect_workaround"], at=days_ago(19 - i), thread=t.thread_of(flaw),
               reply_to=flaw, component="infotainment", content="重启车机能好,估计是内存问题")
    t.flush()
    noms = read(t.engine, service.nominations, settings=SETTINGS, award="newcomer_mentor", since=days_ago(60),
                until=AS_OF, limit=10)
    mine = [i for i in noms.items if i.member_id.startswith(t.prefix)]
    assert mine[0].member_id == mentor
    assert mine[0].evidence and all(e.post_id.startswith(t.prefix) for e in mine[0].evidence)
    assert "解答新人问题" in mine[0].summary and "感谢" in mine[0].summary
    research = read(t.engine, service.nominations, settings=SETTINGS, award="research_pioneer", since=days_ago(60),
                    until=AS_OF, limit=10)
    assert next(i.member_id for i in research.items if i.member_id.startswith(t.prefix)) == researcher


def test_thank_you_names_what_the_member_did(t: Timeline) -> None:
    peacemaker, a, b = t.member("peacemaker"), t.member("a"), t.member("b")
    root = t.post(a, ["defect_report"], at=days_ago(6), title="刹车异响到底正不正常", component="chassis")
    fight = t.post(b, ["hostility"], at=days_ago(6) + timedelta(hours=1), thread=t.thread_of(root), reply_to=root,
                   content="不懂就别瞎说")
    calm = t.post(peacemaker, ["mediation"], at=days_ago(6) + timedelta(hours=2), thread=t.thread_of(root),
                  reply_to=fight, content="两位都消消气,对事不对人")
    t.post(a, ["gratitude"], at=days_ago(6) + timedelta(hours=3), thread=t.thread_of(root), reply_to=calm)
    t.flush()
    draft = read(t.engine, service.thank_you, member_id=peacemaker, as_of=AS_OF)
    assert draft.evidence_post_ids == [calm]
    assert "刹车异响" in draft.message  # names the thread
    assert "消消气" in draft.message or "圆场" in draft.message or "争论" in draft.message
    other = t.member("other")
    q = asked(t, t.member("nb"), at=days_ago(3))
    answer(t, other, q, at=days_ago(3) + timedelta(minutes=5))
    t.flush()
    second = read(t.engine, service.thank_you, member_id=other, as_of=AS_OF)
    assert second.message != draft.message and second.evidence_post_ids


def test_quirk_framed_brake_topic_is_flagged_for_safety_review(t: Timeline) -> None:
    opener = t.post(t.member("o"), ["defect_report"], at=days_ago(12), title="冬天早上第一脚刹车发软",
                    content="早上第一脚刹车踩下去很软,要多踩一截", component="chassis", conditions=["cold"])
    th = t.thread_of(opener)
    for i in range(3):
        t.post(t.member(f"q{i}"), ["quirk_framing"], at=days_ago(11 - i), thread=th, reply_to=opener,
               content="正常的,习惯就好", component="chassis")
    t.post(t.member("fix"), ["defect_workaround"], at=days_ago(8), thread=th, reply_to=opener, component="chassis",
           conditions=["cold"])
    rattle = t.post(t.member("r"), ["defect_report"], at=days_ago(12), title="后备箱异响",
                    content="过减速带后备箱咔咔响", component="interior")
    for i in range(3):
        t.post(t.member(f"rq{i}"), ["quirk_framing"], at=days_ago(11 - i), thread=t.thread_of(rattle), reply_to=rattle,
               component="interior")
    t.flush()
    found = read(t.engine, service.defect_topics, as_of=AS_OF, consensus=None).items
    brake = next(x for x in found if th in x.thread_ids)
    trunk = next(x for x in found if t.thread_of(rattle) in x.thread_ids)
    assert brake.consensus == "quirk" and brake.safety_review and brake.component == "chassis"
    assert brake.conditions.get("cold", 0) >= 2 and len(brake.workaround_post_ids) == 1
    assert brake.stage_counts["quirk_framing"] == 3
    assert trunk.consensus == "quirk" and not trunk.safety_review


def test_same_history_same_answers_for_the_same_as_of(t: Timeline) -> None:
    helper = t.member("helper")
    labor_for(t, helper, 6)
    opener = t.post(t.member("o"), ["defect_report", "defect_complaint"], at=days_ago(9), title="车机死机",
                    component="infotainment")
    t.post(t.member("x"), ["defect_framing", "venting"], at=days_ago(8), thread=t.thread_of(opener), reply_to=opener,
           component="infotainment")
    t.flush()
    snapshot_at = days_ago(2)

    def everything() -> list[object]:
        return [
            risk(t, helper, snapshot_at).model_dump(),
            read(t.engine, service.member_view, member_id=helper, as_of=snapshot_at, daily_cap=12).model_dump(),
            read(t.engine, service.thank_you, member_id=helper, as_of=snapshot_at).model_dump(),
            read(t.engine, service.nominations, settings=SETTINGS, award="community_contribution",
                 since=days_ago(60), until=snapshot_at, limit=50).model_dump(),
            read(t.engine, service.defect_topics, as_of=snapshot_at, consensus=None).model_dump(),
            read(t.engine, service.community_health, settings=SETTINGS, as_of=snapshot_at).model_dump(),
        ]

    first = everything()
    # Later history must not change what was true at snapshot_at.
    labor_for(t, helper, 3, start=1.5)
    t.post(t.member("y"), ["quirk_framing"], at=days_ago(1), thread=t.thread_of(opener), reply_to=opener)
    t.flush()
    read(t.engine, service.acknowledge, member_id=helper, body=AcknowledgementIn(kind="gift", created_at=days_ago(1)),
         recorded_by="test", now=datetime.now(UTC))
    assert everything() == first


def test_health_counts_venting_met_with_empathy_and_answered_questions(t: Timeline) -> None:
    ventor, carer = t.member("ventor"), t.member("carer")
    base = read(t.engine, service.community_health, settings=SETTINGS, as_of=AS_OF)
    v1 = t.post(ventor, ["venting"], at=days_ago(4), content="售后什么态度,气死我了")
    t.post(carer, ["empathy"], at=days_ago(4) + timedelta(minutes=30), thread=t.thread_of(v1), reply_to=v1)
    t.post(ventor, ["venting"], at=days_ago(3), content="再也不买了")
    q = asked(t, t.member("nb"), at=days_ago(2))
    answer(t, carer, q, at=days_ago(2) + timedelta(minutes=10))
    t.flush()
    after = read(t.engine, service.community_health, settings=SETTINGS, as_of=AS_OF)
    assert after.venting_posts == base.venting_posts + 2
    assert after.newcomer_questions == base.newcomer_questions + 1
    assert after.posts == base.posts + 5
    if base.venting_posts == 0:
        assert after.venting_answered_with_empathy_share == 0.5
        assert after.minutes_to_first_empathetic_reply.median == 30.0




def test_a_post_redelivered_in_one_batch_with_other_labels_counts_once(t: Timeline) -> None:
    helper, asker = t.member("helper"), t.member("asker")
    q = asked(t, asker, at=days_ago(3))
    a = answer(t, helper, q, at=days_ago(3) + timedelta(minutes=5))
    first = t.events[-1]
    again = first.model_copy(update={"classification": first.classification.model_copy(
        update={"labels": ["hostility"]})})
    t.events.append(again)
    t.flush()
    member = read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12)
    target = read(t.engine, service.member_view, member_id=asker, as_of=AS_OF, daily_cap=12)
    assert member.labor["newcomer_answer"] == 1 and target.received.hostility == 0
    assert read(t.engine, service.post_view, post_id=a).classification.labels == ["newcomer_answer"]


@pytest.mark.parametrize("order", ["together", "welcome_first", "question_first"])
def test_thread_opener_does_not_depend_on_arrival_order(engine: Engine, order: str) -> None:
    t = Timeline(engine, f"s{next(_counter)}")
    asker, greeter = t.member("asker"), t.member("greeter")
    same = days_ago(2)
    thread = t.id("t")
    # Two posts that reply to no one, at the same instant: the smaller post id opens the thread.
    q = t.post(asker, ["newcomer_question"], at=same, thread=thread)
    w = t.post(greeter, ["welcome"], at=same, thread=thread)
    assert q < w
    events = list(t.events)
    t.events = []
    batches = {"together": [events], "welcome_first": [[events[1]], [events[0]]],
               "question_first": [[events[0]], [events[1]]]}[order]
    for batch in batches:
        t.events = list(batch)
        t.flush()
    member = read(t.engine, service.member_view, member_id=greeter, as_of=AS_OF, daily_cap=12)
    assert member.labor["welcome"] == 1


def test_a_reaction_stored_before_its_post_still_counts(t: Timeline) -> None:
    author, fan = t.member("author"), t.member("fan")
    q = asked(t, t.member("nb"), at=days_ago(3))
    pending = t.events.pop()
    t.reaction(q, fan, "thanks", at=days_ago(2))
    t.flush()  # the reaction alone
    t.events.append(pending)
    t.flush()
    member = read(t.engine, service.member_view, member_id=t.authors[q], as_of=AS_OF, daily_cap=12)
    assert member.received.reactions == 1
    assert author  # the reaction counts for the post's author, whoever stored it first


def test_a_reaction_whose_post_was_stored_concurrently_counts_before_and_after_repair(t: Timeline) -> None:
    from sqlalchemy import update

    from recognition.models import StoredReaction

    q = asked(t, t.member("nb"), at=days_ago(3))
    t.reaction(q, t.member("fan"), "thanks", at=days_ago(2))
    t.reaction(q, t.authors[q], "like", at=days_ago(2))  # self-reactions never count
    t.flush()
    recipient = t.authors[q]

    def counted() -> tuple[int, int]:
        member = read(t.engine, service.member_view, member_id=recipient, as_of=AS_OF, daily_cap=12)
        with db.unit_of_work(t.engine) as session:
            history = repository.histories(session, member_ids=[recipient], as_of=AS_OF, window_days=30,
                                           recent_days=14, baseline_days=90)[recipient]
        return member.received.reactions, sum(history.reactions.values())

    assert counted() == (1, 1)
    # Two replicas storing the reaction and its post at once cannot see each other's row: no recipient.
    with db.unit_of_work(t.engine) as session:
        session.exec(update(StoredReaction).where(StoredReaction.post_id == q)  # type: ignore[call-overload,arg-type]
                     .values(recipient_id=None))
    assert counted() == (1, 1)  # still counted, through the post
    with db.unit_of_work(t.engine) as session:
        # Every other reaction whose post is stored has its recipient already: only these two are filled.
        assert repository.fill_recipients(session) == 2
        assert repository.fill_recipients(session) == 0
    assert counted() == (1, 1)


def test_staff_status_and_names_are_read_as_of(t: Timeline) -> None:
    helper = t.member("helper")
    labor_for(t, helper, 3)
    t.flush()
    before = risk(t, helper, days_ago(1))
    t.post(helper, [], at=days_ago(0.5), official=True)  # hired later, posting as staff
    t.flush()
    assert risk(t, helper, days_ago(1)).model_dump() == before.model_dump()
    with pytest.raises(AnchorError):
        risk(t, helper, AS_OF)
    later = t.post(helper, [], at=days_ago(0.2))
    t.events[-1] = t.events[-1].model_copy(update={"author": t.events[-1].author.model_copy(  # type: ignore[union-attr]
        update={"display_name": "新名字"})})
    t.flush()
    assert later
    old_name = read(t.engine, service.member_view, member_id=helper, as_of=days_ago(1), daily_cap=12).display_name
    new_name = read(t.engine, service.member_view, member_id=helper, as_of=AS_OF, daily_cap=12).display_name
    assert old_name == "helper" and new_name == "新名字"


def test_one_friend_thanking_many_times_is_one_echo(t: Timeline) -> None:
    gamer, genuine, friend = t.member("gamer"), t.member("genuine"), t.member("friend")
    q = asked(t, t.member("nb"), at=days_ago(10))
    a = answer(t, gamer, q, at=days_ago(10) + timedelta(minutes=1))
    for i in range(25):
        t.post(friend, ["gratitude"], at=days_ago(9) + timedelta(minutes=i), thread=t.thread_of(q), reply_to=a)
    for i in range(4):
        qi = asked(t, t.member(f"nb{i}"), at=days_ago(8 - i))
        ai = answer(t, genuine, qi, at=days_ago(8 - i) + timedelta(minutes=1))
        t.post(t.member(f"nb{i}"), ["gratitude"], at=days_ago(8 - i) + timedelta(hours=1), thread=t.thread_of(qi),
               reply_to=ai)
    t.flush()
    noms = read(t.engine, service.nominations, settings=SETTINGS, award="newcomer_mentor", since=days_ago(30),
                until=AS_OF, limit=100)
    ranked = [i.member_id for i in noms.items if i.member_id in (gamer, genuine)]
    assert ranked == [genuine, gamer]


def test_acknowledgements_are_idempotent_and_never_rewrite_the_past(t: Timeline) -> None:
    helper = t.member("helper")
    labor_for(t, helper, 4)
    t.flush()
    body = AcknowledgementIn(kind="gift", acknowledgement_id=f"{t.prefix}-a", created_at=days_ago(10))
    read(t.engine, service.acknowledge, member_id=helper, body=body, recorded_by="x", now=days_ago(1))
    with pytest.raises(AnchorError) as conflict:
        read(t.engine, service.acknowledge, member_id=helper, body=body.model_copy(update={"kind": "public_award"}),
             recorded_by="x", now=days_ago(1))
    assert conflict.value.status_code == 409
    # Back-dated to ten days ago but recorded one day ago: answers for five days ago stay as they were.
    assert risk(t, helper, days_ago(5)).reward == 0
    assert risk(t, helper, AS_OF).reward == 3.0


def test_a_members_risk_is_served_from_the_snapshot_only_until_something_behind_it_changes(t: Timeline) -> None:
    """"Now" reads of one member's risk are answered from the community snapshot while nothing that goes into it
    has changed since; each kind of change sends the next read back to the member's history."""
    assert t.engine is not None
    now = datetime.now(UTC)
    helper, thanked, reacted, acked, opted, gone, bystander = (
        t.member(n) for n in ("helper", "thanked", "reacted", "acked", "opted", "gone", "bystander"))
    posts: dict[str, str] = {}
    for i, m in enumerate((helper, thanked, reacted, acked, opted, gone, bystander)):
        q = asked(t, t.member(f"newbie{i}"), at=days_ago(5, anchor=now))
        posts[m] = answer(t, m, q, at=days_ago(5, anchor=now) + timedelta(minutes=10))
        if m == gone:  # someone answers after them, a repeat until they are deleted
            after_gone = t.member("after-gone")
            answer(t, after_gone, q, at=days_ago(5, anchor=now) + timedelta(minutes=30))
    answered_by_gone, replier = t.member("newbie5"), t.member("replier")
    t.post(replier, ["gratitude"], at=days_ago(4, anchor=now), reply_to=posts[gone], thread=t.thread_of(posts[gone]))
    # An answer that is not a repeat yet (an earlier one to the same question arrives later), and a reply stored
    # before the post it answers (its credit is judged again when that post arrives).
    first, second_answerer, early_replier = t.member("first"), t.member("second"), t.member("early")
    question = asked(t, t.member("asker"), at=days_ago(3, anchor=now))
    answer(t, second_answerer, question, at=days_ago(3, anchor=now) + timedelta(hours=2))
    opener = t.post(t.member("opener"), ["venting"], at=days_ago(3, anchor=now), content="又坏了")
    late_opener = t.events.pop()
    t.post(early_replier, ["empathy"], at=days_ago(3, anchor=now) + timedelta(minutes=5), reply_to=opener,
           thread=t.thread_of(opener), with_parent=False, content="抱抱,先别急")
    t.post(bystander, ["welcome"], at=datetime.now(UTC) + timedelta(hours=2))  # after the snapshot: not its name
    renamed = t.events[-1].author.model_copy(update={"display_name": "改了名"})  # type: ignore[union-attr]
    t.events[-1] = t.events[-1].model_copy(update={"author": renamed})
    t.flush()
    snap = watch.compute(t.engine, SETTINGS, datetime.now(UTC))

    def served(member: str) -> bytes | None:
        return read(t.engine, service.snapshot_risk, risks=snap.risks, taken_at=snap.as_of, member_id=member,
                    slack=timedelta(0))

    # The snapshot's answer is the one the member's history gives for the same instant, byte for byte.
    for m in (helper, thanked, bystander, second_answerer, early_replier):
        assert served(m) == risk(t, m, as_of=snap.as_of).model_dump_json().encode()
    assert served(t.member("never-posted")) is None
    assert json.loads(snap.risks[bystander])["display_name"] == "bystander"
    with db.unit_of_work(t.engine) as session:  # a row from before `changed_at` existed: nothing changed since
        session.exec(update(Member).where(col(Member.member_id) == helper).values(changed_at=None))  # type: ignore[call-overload]
    assert served(helper) is not None

    later = datetime.now(UTC)
    t.post(helper, ["empathy"], at=later, reply_to=posts[bystander], thread=t.thread_of(posts[bystander]))
    t.post(t.member("fan"), ["gratitude"], at=later, reply_to=posts[thanked], thread=t.thread_of(posts[thanked]))
    t.reaction(posts[reacted], t.member("fan"), "helpful", at=later)
    answer(t, first, question, at=days_ago(3, anchor=now) + timedelta(hours=1))  # makes the other a repeat
    t.events.append(late_opener)
    t.flush()
    read(t.engine, service.acknowledge, member_id=acked, body=AcknowledgementIn(kind="gift"), recorded_by="test",
         now=later)
    read(t.engine, service.set_opt_out, member_id=opted, opted_out=True, by="test", now=later)
    assert all(served(m) is not None for m in (answered_by_gone, replier, after_gone))
    read(t.engine, service.delete_member, deletion=MemberDeleted(member_id=gone, requested_at=later, event_id="e1"),
         now=later)
    # Their own post, and what others did to them: thanks, a reaction, a brand acknowledgement; an opt-out (the
    # on-demand read then refuses) and a deletion. The member a new reply was directed at changed too, and so did
    # the deleted member's: whom they answered, and who replied to them (that reply's credit is judged again).
    for m in (helper, thanked, reacted, acked, opted, gone, bystander, answered_by_gone, replier, after_gone,
              second_answerer, early_replier):
        assert served(m) is None, m
    fresh = risk(t, thanked, as_of=datetime.now(UTC))
    assert fresh.reward > json.loads(snap.risks[thanked])["reward"]

    # Nothing changed for the members of a new snapshot; and a change made just before a snapshot was taken may
    # not be in it, so within the slack the history is read.
    again = watch.compute(t.engine, SETTINGS, datetime.now(UTC))
    assert read(t.engine, service.snapshot_risk, risks=again.risks, taken_at=again.as_of, member_id=thanked,
                slack=timedelta(0)) is not None
    assert read(t.engine, service.snapshot_risk, risks=again.risks, taken_at=again.as_of, member_id=thanked,
                slack=timedelta(minutes=1)) is None
    assert opted not in again.risks and gone not in again.risks


def test_the_snapshot_serves_topics_and_risk_lists_as_the_models_would_serialize_them(t: Timeline) -> None:
    """The snapshot keeps each topic's and each member's answer as JSON, not the models: the answers spliced from
    them, the gauges' counts and the alerts' states are the ones the models themselves give."""
    opener = t.post(t.member("o"), ["defect_report"], at=days_ago(12), title="冬天早上第一脚刹车发软",
                    content="早上第一脚刹车踩下去很软", component="chassis", conditions=["cold"])
    for i in range(3):
        t.post(t.member(f"q{i}"), ["quirk_framing"], at=days_ago(11 - i), thread=t.thread_of(opener),
               reply_to=opener, content="正常的,习惯就好", component="chassis")
    other = t.post(t.member("r"), ["defect_report"], at=days_ago(12), title="车机黑屏", component="infotainment")
    for i in range(2):
        t.post(t.member(f"d{i}"), ["defect_framing"], at=days_ago(10 - i), thread=t.thread_of(other),
               reply_to=other, content="这就是质量问题", component="infotainment")
    t.flush()
    snap = watch.compute(t.engine, SETTINGS, datetime.now(UTC))
    topics = read(t.engine, service.defect_topics, as_of=snap.as_of, consensus=None).items
    assert {x.consensus for x in topics} >= {"quirk", "defect"}
    for consensus in (None, "investigating", "quirk", "defect", "contested"):
        for limit in (1, 2, 1000):
            chosen = [x for x in topics if consensus is None or x.consensus == consensus][:limit]
            expected = DefectTopics(as_of=snap.as_of, items=chosen).model_dump_json().encode()
            assert watch.topics_body(snap, consensus, limit) == expected
    assert DefectTopics.model_validate_json(watch.topics_body(snap, None, 1000)).items == topics
    for state in ("investigating", "quirk", "defect", "contested"):
        assert snap.topic_counts.get(state, 0) == sum(x.consensus == state for x in topics)
    assert snap.topic_counts["safety_review"] == sum(x.safety_review for x in topics) >= 1
    brake = next(x for x in topics if t.thread_of(opener) in x.thread_ids)
    state, key, payload = watch.desired_states(snap, {})["defect_escalation"][f"topic:{brake.topic_id}"]
    assert (state, key, payload["consensus"], payload["safety_review"]) == (
        "+safety_review", brake.topic_id, "quirk", True)

    # A risk list from the snapshot is the list computed for the same instant, byte for byte.
    for level, limit in (("low", 3), ("low", 500), ("high", 50)):
        floor = risk_model.LEVEL_ORDER[level]
        chosen = [m for m, lv in snap.ranked if risk_model.LEVEL_ORDER[lv] >= floor][:limit]
        listed = read(t.engine, service.burnout_list, settings=SETTINGS, level=level, limit=limit, as_of=snap.as_of)
        assert watch.risks_body(snap, chosen) == listed.model_dump_json().encode()
    for member, member_level in snap.ranked[:20]:
        state, key, payload = watch.desired_states(snap, {})["burnout_risk"][f"risk:{member}"]
        assert (key, payload["level"]) == (member, member_level)
        assert payload["drivers"] == [d["factor"] for d in json.loads(snap.risks[member])["drivers"]]
