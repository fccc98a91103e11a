"""The pure parts of recognition: alert crossings, the risk formula's monotonicity, topic grouping, drafts."""

from datetime import UTC, datetime, timedelta

from recognition import alerts, flaw_topics, risk, thanks
from recognition.health import Need, concentration, minutes_to_reply, share

NOW = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = {"as_of": NOW, "window_days": 30, "recent_days": 14, "baseline_days": 90, "daily_cap": 12}


def _history(answers: int, **kw: object) -> risk.History:
    h = risk.History("m", **kw)  # type: ignore[arg-type]
    h.labor = [risk.LaborPost(f"p{i}", "newcomer_answer", NOW - timedelta(days=i % 28, hours=1),
                              (NOW - timedelta(days=i % 28)).date().isoformat(), 14) for i in range(answers)]
    return h


def test_risk_rises_with_one_sided_effort_and_falls_with_reward() -> None:
    low = risk.assess(_history(2), **WINDOW)
    high = risk.assess(_history(20), **WINDOW)
    thanked = _history(20)
    thanked.received = [risk.Received(f"g{i}", "gratitude", NOW) for i in range(15)]
    rewarded = risk.assess(thanked, **WINDOW)
    assert low.score < high.score and rewarded.score < high.score
    assert high.effort_reward_ratio == 20.0 and rewarded.effort_reward_ratio == round(20 / 16, 2)


def test_strain_and_withdrawal_each_raise_risk() -> None:
    base = risk.assess(_history(8), **WINDOW)
    strained = _history(8)
    strained.received = [risk.Received("h", "hostility", NOW), risk.Received("b", "bias_accusation", NOW)]
    quiet = _history(8, recent_posts=0, baseline_posts=60)
    assert risk.assess(strained, **WINDOW).score > base.score
    assert risk.assess(quiet, **WINDOW).score > base.score
    assert "withdrawal" in {d.factor for d in risk.assess(quiet, **WINDOW).drivers}


def test_late_night_and_repeated_answers_weigh_more() -> None:
    day = _history(6)
    night = _history(6)
    night.labor = [risk.LaborPost(p.post_id, p.label, p.created_at, p.day, 2, repeat=True) for p in night.labor]
    assert risk.assess(night, **WINDOW).effort == 6 * (1 + risk.LATE_NIGHT_EXTRA + risk.REPEAT_EXTRA)
    assert risk.assess(day, **WINDOW).effort == 6.0


def test_levels_cover_the_unit_interval() -> None:
    assert [risk.level_of(x) for x in (0.0, 0.29, 0.3, 0.5, 0.69, 0.7, 1.0)] == [
        "low", "low", "elevated", "high", "high", "critical", "critical"]


def test_alert_fires_once_per_crossing_and_rearms() -> None:
    payload = ("high", "m1", {})
    first = alerts.crossings(alerts.BURNOUT, {}, {"risk:m1": payload})
    assert [c.alert for c in first] == [True]
    assert alerts.crossings(alerts.BURNOUT, {"risk:m1": "high"}, {"risk:m1": payload}) == []
    down = alerts.crossings(alerts.BURNOUT, {"risk:m1": "high"}, {"risk:m1": ("below", "m1", {})})
    assert [(c.new, c.alert) for c in down] == [("below", False)]
    assert alerts.crossings(alerts.BURNOUT, {}, {"risk:m2": ("below", "m2", {})}) == []  # nothing to remember
    assert [c.alert for c in alerts.crossings(alerts.BURNOUT, {"risk:m1": "below"}, {"risk:m1": payload})] == [True]


def test_topic_alerts_on_each_new_flag_only() -> None:
    esc = alerts.topic_state(escalating=True, safety_review=False)
    both = alerts.topic_state(escalating=True, safety_review=True)
    assert [c.alert for c in alerts.crossings(alerts.DEFECT, {}, {"topic:t": (esc, "t", {})})] == [True]
    assert [c.alert for c in alerts.crossings(alerts.DEFECT, {"topic:t": esc}, {"topic:t": (both, "t", {})})] == [True]
    assert [c.alert for c in alerts.crossings(alerts.DEFECT, {"topic:t": both}, {"topic:t": (esc, "t", {})})] == [False]


def test_symptoms_group_threads_and_safety_words_are_recognised() -> None:
    assert flaw_topics.symptom_of("冬天早上第一脚刹车发软") == "brake_soft"
    assert flaw_topics.symptom_of("高速上突然幽灵刹车") == "phantom_brake"
    assert flaw_topics.symptom_of("下雨天门把手弹不出来") == "door_stuck"
    assert flaw_topics.symptom_of("车机又卡死了") == "lag_crash"
    assert flaw_topics.consensus(0.5, 0.5) == "investigating"
    assert flaw_topics.consensus(4, 1) == "quirk" and flaw_topics.consensus(1, 4) == "defect"
    assert flaw_topics.consensus(3, 2.5) == "contested"


def _row(post: str, thread: str, author: str, label: str, day: int, component: str = "infotainment") -> flaw_topics.Row:
    return flaw_topics.Row(post, thread, author, label, NOW - timedelta(days=day), component, "", False)


def test_threads_on_the_same_symptom_merge_and_veterans_weigh_more() -> None:
    rows = [_row("a1", "ta", "u1", "defect_report", 9), _row("b1", "tb", "u2", "defect_report", 8),
            _row("b2", "tb", "vet", "quirk_framing", 7), _row("b3", "tb", "u3", "defect_framing", 6),
            _row("c1", "tc", "u4", "defect_report", 5, "body")]
    texts = {"ta": ("车机卡顿", ""), "tb": ("车机又死机了", ""), "tc": ("门缝漏水", "")}
    built = flaw_topics.build(rows, threads=texts, standings={"vet": 3.0, "u3": 1.0}, as_of=NOW)
    merged = next(t for t in built if "ta" in t.thread_ids)
    assert merged.thread_ids == ["ta", "tb"] and merged.reporters == 2
    assert merged.consensus == "quirk"  # one veteran (3.0) against one newcomer (1.0)
    assert not merged.safety_review
    assert len(built) == 2


def test_escalation_needs_growing_defect_framing_and_venting() -> None:
    rows = [_row("a", "t", "u0", "defect_report", 12)]
    rows += [_row(f"v{i}", "t", f"u{i}", "venting" if i % 2 else "defect_framing", 1 + i % 5) for i in range(1, 6)]
    built = flaw_topics.build(rows, threads={"t": ("车机黑屏", "")}, standings={}, as_of=NOW)
    assert built[0].escalating
    calm = flaw_topics.build(rows[:2], threads={"t": ("车机黑屏", "")}, standings={}, as_of=NOW)
    assert not calm[0].escalating


def test_health_helpers() -> None:
    needs = [Need("a", NOW, NOW + timedelta(minutes=10)), Need("b", NOW, None), Need("c", NOW,
                                                                                NOW + timedelta(minutes=30))]
    assert share(needs) == round(2 / 3, 4) and share([]) is None
    assert minutes_to_reply(needs) == {"median": 20.0, "p90": 30.0}
    spread = concentration({"a": 50, "b": 30, "c": 10, "d": 5, "e": 3, "f": 2})
    assert spread == {"top5_share": 0.98, "members_doing_half": 1, "members_doing_labor": 6}


def test_thank_you_drafts_vary_and_name_the_thread() -> None:
    def contribution(member: str) -> list[dict[str, object]]:
        return [{"post_id": f"{member}-p1", "label": "mediation", "created_at": NOW, "title": "刹车异响到底正不正常",
                 "target_name": "小李", "excerpt": "两位都消消气,对事不对人", "component": "chassis", "echo": 2}]

    drafts = [thanks.draft(member_id=f"m{i}", name=f"车友{i}", contributions=contribution(f"m{i}"))[0]
              for i in range(12)]
    assert len({d.replace(f"车友{i}", "X") for i, d in enumerate(drafts)}) > 3  # not one template
    assert all("刹车异响" in d for d in drafts)
    message, ids = thanks.draft(member_id="m", name="阿福", contributions=[])
    assert ids == [] and "阿福" in message


def test_consensus_does_not_depend_on_row_order() -> None:
    rows = [_row("a", "t", "u0", "defect_report", 9), _row("b", "t", "u1", "quirk_framing", 5),
            _row("b", "t", "u1", "defect_framing", 5), _row("c", "t", "u2", "defect_framing", 4)]
    texts = {"t": ("车机黑屏", "")}
    one = flaw_topics.build(rows, threads=texts, standings={}, as_of=NOW)[0]
    other = flaw_topics.build(list(reversed(rows)), threads=texts, standings={}, as_of=NOW)[0]
    assert (one.consensus, one.framing_weight) == (other.consensus, other.framing_weight)
    assert one.topic_id == other.topic_id
