"""Flaw topics: threads that discuss a flaw, merged when they discuss the same symptom of the same part,
with where the community's framing stands and whether a safety problem is being talked into a quirk.

Pure functions over rows the repository reads; docs/flaw-topics.md explains the rules.
"""

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.labels import COMPONENTS, FLAW_LABELS

# Symptom families, matched on a thread's title and opening post; threads on the same component with the
# same symptom are one topic. Order matters: the first match names the symptom.
SYMPTOMS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((key, re.compile(pattern)) for key, pattern in (
    ("brake_soft", r"刹车.{0,6}(软|沉|硬|失灵|变长|不灵)|制动.{0,4}(软|失灵|距离)|踏板.{0,4}(软|硬)"),
    ("phantom_brake", r"幽灵刹车|无故刹车|莫名.{0,3}刹车|自己刹车|急刹|误刹"),
    ("steering", r"方向盘|转向"),
    ("door_stuck", r"(门|门把手).{0,8}(打不开|开不了|弹不出|失灵|卡住|冻住)|门把手"),
    ("battery_heat", r"(电池|充电).{0,6}(发烫|过热|冒烟|起火|焦味|鼓包)|热失控"),
    ("power_loss", r"(动力|电).{0,4}(中断|丢失)|趴窝|突然.{0,4}(没电|断电|没动力|熄火)|限功率"),
    ("water_leak", r"漏水|进水|积水|渗水"),
    ("noise", r"异响|噪音|嗡嗡|咔咔|吱吱|风噪|胎噪|响声"),
    ("lag_crash", r"卡顿|卡死|死机|黑屏|重启|转圈|延迟"),
    ("range_charging", r"续航|掉电|充电.{0,4}(慢|功率)|充不进|充不满"),
    ("connectivity", r"断连|蓝牙|carplay|CarPlay|连不上|数字钥匙|断开"),
    ("smell", r"异味|臭味|霉味|酸味"),
    ("jerk", r"顿挫|闯|抖动|抖"),
    ("paint", r"漆|锈|鼓包"),
    ("lane_keep", r"车道保持|车道居中|压线|画龙"),
))
SAFETY_SYMPTOMS = frozenset({"brake_soft", "phantom_brake", "steering", "door_stuck", "battery_heat", "power_loss",
                             "lane_keep"})
SAFETY_TEXT = re.compile(r"刹车|制动|转向|方向盘.{0,4}(锁|沉|失灵)|门.{0,6}(打不开|开不了)|"
                         r"(电池|充电).{0,6}(发烫|过热|冒烟|起火|焦味)|冒烟|起火|动力中断|断电|趴窝|失控")
SAFETY_COMPONENTS = frozenset({"adas"})
ESCALATION_DAYS = 7
ESCALATION_MIN = 3
FRAMING = ("quirk_framing", "defect_framing")


@dataclass(frozen=True, slots=True)
class Row:
    post_id: str
    thread_id: str
    author_id: str
    label: str
    created_at: datetime
    component: str | None
    conditions: str
    is_official: bool


@dataclass
class Topic:
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
    consensus: str
    escalating: bool
    safety_review: bool
    symptom: str | None = None
    framing_weight: dict[str, float] = field(default_factory=dict)
    safety_relevant: bool = False


def symptom_of(text: str) -> str | None:
    return next((key for key, regex in SYMPTOMS if regex.search(text)), None)


def _component(rows: Iterable[Row]) -> str:
    counts = Counter(r.component for r in rows if r.component)
    if not counts:
        return "other"
    top = max(counts.values())
    return next(c for c in COMPONENTS if counts.get(c) == top)


def standing(credited_posts: int, gratitude_received: int) -> float:
    """How much a member's framing weighs: a veteran whose help others thank moves consensus more than a
    newcomer, but no one outweighs a handful of others (logarithmic)."""
    return 1.0 + math.log1p(credited_posts) * 0.5 + math.log1p(gratitude_received) * 0.5


def consensus(quirk: float, defect: float) -> str:
    if quirk + defect < 2.0:
        return "investigating"
    if quirk >= 1.5 * defect:
        return "quirk"
    if defect >= 1.5 * quirk:
        return "defect"
    return "contested"


def build(rows: Sequence[Row], *, threads: dict[str, tuple[str | None, str]], standings: dict[str, float],
          as_of: datetime) -> list[Topic]:
    """Topics from flaw and venting label rows up to `as_of`. `threads` maps a thread id to its (title,
    opening text); `standings` maps an author to their standing."""
    by_thread: dict[str, list[Row]] = {}
    for r in rows:
        by_thread.setdefault(r.thread_id, []).append(r)
    groups: dict[str, list[str]] = {}
    keys: dict[str, tuple[str, str | None]] = {}
    for thread_id, trows in by_thread.items():
        if not any(r.label in FLAW_LABELS for r in trows):
            continue  # venting alone does not make a flaw topic
        component = _component(r for r in trows if r.label in FLAW_LABELS)
        title, opening = threads.get(thread_id, (None, ""))
        symptom = symptom_of(f"{title or ''} {opening}")
        key = f"{component}:{symptom}" if symptom else f"thread:{thread_id}"
        groups.setdefault(key, []).append(thread_id)
        keys[key] = (component, symptom)
    topics = []
    for key, thread_ids in groups.items():
        component, symptom = keys[key]
        trows = sorted((r for t in thread_ids for r in by_thread[t]), key=lambda r: (r.created_at, r.post_id))
        topics.append(_topic(key, sorted(thread_ids), component, symptom, trows, threads, standings, as_of))
    # What needs a person first: safety reviews, then escalations, then the most recently active.
    topics.sort(key=lambda t: (-int(t.safety_review), -int(t.escalating), -t.last_seen.timestamp(), t.topic_id))
    return topics


def _topic(key: str, thread_ids: list[str], component: str, symptom: str | None, rows: list[Row],
           threads: dict[str, tuple[str | None, str]], standings: dict[str, float], as_of: datetime) -> Topic:
    flaw = [r for r in rows if r.label in FLAW_LABELS]
    stage = Counter(r.label for r in flaw)
    posts = {r.post_id for r in flaw}
    conditions: Counter[str] = Counter()
    seen_posts: set[str] = set()
    for r in flaw:
        if r.post_id not in seen_posts and r.conditions:
            seen_posts.add(r.post_id)
            conditions.update(c for c in r.conditions.split(",") if c)
    reporters = {r.author_id for r in flaw if r.label in ("defect_report", "defect_complaint") and not r.is_official}
    # Each member counts once, with their latest framing: changing one's mind is allowed, repeating is not.
    latest: dict[str, Row] = {}
    for r in sorted((r for r in rows if r.label in FRAMING), key=lambda r: (r.created_at, r.post_id, r.label)):
        latest[r.author_id] = r  # a post with both framings counts as its quirk framing (sorts last)
    weight = {"quirk_framing": 0.0, "defect_framing": 0.0}
    for author, r in latest.items():
        weight[r.label] += standings.get(author, 1.0)
    state = consensus(weight["quirk_framing"], weight["defect_framing"])
    recent_start = as_of - timedelta(days=ESCALATION_DAYS)
    before_start = recent_start - timedelta(days=ESCALATION_DAYS)
    heat = [r for r in rows if r.label in ("defect_framing", "venting")]
    recent = sum(r.created_at > recent_start for r in heat)
    before = sum(before_start < r.created_at <= recent_start for r in heat)
    escalating = recent >= ESCALATION_MIN and recent > before
    texts = " ".join(f"{threads.get(t, (None, ''))[0] or ''} {threads.get(t, (None, ''))[1]}" for t in thread_ids)
    safety_relevant = (symptom in SAFETY_SYMPTOMS or component in SAFETY_COMPONENTS
                       or bool(SAFETY_TEXT.search(texts)))
    # Any quirk framing of a safety flaw goes to review: the cost of a needless review is small, the cost
    # of a community talking itself into accepting a brake fault is not.
    safety_review = safety_relevant and weight["quirk_framing"] > 0
    title = next((threads[t][0] for t in thread_ids if t in threads and threads[t][0]), None)
    # Named after the thread where the topic began, so the id survives a change of majority component or
    # symptom wording (which would change `key`), and alerts keyed on it are not repeated.
    origin = min(thread_ids, key=lambda t: min((r.created_at, r.post_id) for r in rows if r.thread_id == t))
    topic_id = "tp-" + hashlib.sha256(origin.encode()).hexdigest()[:12]
    return Topic(
        topic_id=topic_id, thread_ids=thread_ids, component=component, title=title,
        first_seen=flaw[0].created_at, last_seen=max(r.created_at for r in rows), posts=len(posts),
        reporters=len(reporters), stage_counts={label: stage.get(label, 0) for label in FLAW_LABELS},
        conditions=dict(sorted(conditions.items())),
        workaround_post_ids=sorted({r.post_id for r in flaw if r.label == "defect_workaround"}),
        consensus=state, escalating=escalating, safety_review=safety_review, symptom=symptom,
        framing_weight={k: round(v, 3) for k, v in weight.items()}, safety_relevant=safety_relevant)
