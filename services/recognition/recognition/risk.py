"""Burnout risk as an "acknowledgment gap": a pure function of one member's recent history.

After Siegrist's effort-reward imbalance model, read for volunteer community work. It is a prompt for a
community manager to act (thank, protect, lighten the load), never a diagnosis. docs/burnout-risk.md gives
the model, the weights and the reasons for them; the constants here are the ones it documents.
"""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Effort per directed labor post. Mediation is the costliest (stepping into someone else's fight), a
# welcome the lightest; redirecting to official channels often follows absorbing an angry post.
LABOR_WEIGHTS = {"newcomer_answer": 1.0, "welcome": 0.5, "empathy": 1.0, "redirect_official": 0.8, "mediation": 1.5}
LATE_NIGHT_HOURS = range(0, 6)  # local 00:00-05:59
LATE_NIGHT_EXTRA = 0.5
REPEAT_EXTRA = 0.5  # answering a question someone (or they) already answered: the FAQ nobody wrote
# Reward per event received. A brand's acknowledgement weighs more than a member's thanks: it is the
# "esteem" part of Siegrist's reward, and the only part the brand controls.
REACTION_WEIGHTS = {"like": 0.3, "thanks": 1.0, "helpful": 1.0, "accepted_answer": 1.5}
GRATITUDE_WEIGHT = 1.0
ACK_WEIGHTS = {"private_thanks": 3.0, "gift": 3.0, "public_award": 5.0}
STRAIN_WEIGHTS = {"hostility": 1.0, "bias_accusation": 1.5}
SUSTAINED_EFFORT = 15.0  # weighted labor in the window at which volume saturates
STRAIN_SCALE = 3.0
MIN_BASELINE_POSTS_PER_WEEK = 1.0
# The three parts combine like independent hazards: each can raise risk on its own, none alone reaches 1.
IMBALANCE_SHARE, STRAIN_SHARE, WITHDRAWAL_SHARE = 0.6, 0.45, 0.4
LEVELS = (("critical", 0.7), ("high", 0.5), ("elevated", 0.3), ("low", 0.0))
LEVEL_ORDER = {"low": 0, "elevated": 1, "high": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class LaborPost:
    post_id: str
    label: str
    created_at: datetime
    day: str
    hour: int
    repeat: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    post_id: str
    label: str  # gratitude, hostility, bias_accusation
    created_at: datetime


@dataclass
class History:
    member_id: str
    labor: list[LaborPost] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    reactions: Counter[str] = field(default_factory=Counter)  # kind -> n, in the window
    acknowledgements: Counter[str] = field(default_factory=Counter)  # kind -> n, in the window
    recent_posts: int = 0
    baseline_posts: int = 0


@dataclass(frozen=True, slots=True)
class Driver:
    factor: str
    detail: str
    evidence_post_ids: list[str]
    weight: float


@dataclass(frozen=True, slots=True)
class Assessment:
    member_id: str
    as_of: datetime
    score: float
    level: str
    effort: float
    reward: float
    effort_reward_ratio: float
    drivers: list[Driver]
    recommended_actions: list[dict[str, str]]
    parts: dict[str, float]


def level_of(score: float) -> str:
    return next(name for name, floor in LEVELS if score >= floor)


def _capped(labor: Sequence[LaborPost], cap: int) -> list[LaborPost]:
    """Keeps at most `cap` posts per (label, local day), earliest first: flooding does not count."""
    seen: Counter[tuple[str, str]] = Counter()
    kept = []
    for post in sorted(labor, key=lambda p: (p.created_at, p.post_id)):
        key = (post.label, post.day)
        if seen[key] < cap:
            seen[key] += 1
            kept.append(post)
    return kept


def _newest(ids: Sequence[tuple[datetime, str]], n: int = 5) -> list[str]:
    return [post_id for _, post_id in sorted(ids, reverse=True)[:n]]


def assess(history: History, *, as_of: datetime, window_days: int, recent_days: int, baseline_days: int,
           daily_cap: int) -> Assessment:
    labor = _capped(history.labor, daily_cap)
    effort = 0.0
    for post in labor:
        weight = LABOR_WEIGHTS.get(post.label, 0.0)
        extra = (LATE_NIGHT_EXTRA if post.hour in LATE_NIGHT_HOURS else 0.0) + (REPEAT_EXTRA if post.repeat else 0.0)
        effort += weight * (1.0 + extra)
    gratitude = [r for r in history.received if r.label == "gratitude"]
    reward = (GRATITUDE_WEIGHT * len(gratitude)
              + sum(REACTION_WEIGHTS.get(k, 0.0) * n for k, n in history.reactions.items())
              + sum(ACK_WEIGHTS.get(k, 0.0) * n for k, n in history.acknowledgements.items()))
    strain = sum(STRAIN_WEIGHTS.get(r.label, 0.0) for r in history.received)
    ratio = effort / (1.0 + reward)
    volume = min(1.0, effort / SUSTAINED_EFFORT)
    imbalance = max(0.0, ratio - 1.0) / (ratio + 1.0)
    strain_level = 1.0 - math.exp(-strain / STRAIN_SCALE)
    weeks_recent = recent_days / 7.0
    weeks_baseline = baseline_days / 7.0
    baseline_rate = history.baseline_posts / weeks_baseline
    recent_rate = history.recent_posts / weeks_recent
    withdrawal = (max(0.0, 1.0 - recent_rate / baseline_rate)
                  if baseline_rate >= MIN_BASELINE_POSTS_PER_WEEK else 0.0)
    # Strain weighs fully on members who carry the community and half on others.
    p_imbalance = IMBALANCE_SHARE * volume * imbalance
    p_strain = STRAIN_SHARE * strain_level * max(volume, 0.5)
    p_withdrawal = WITHDRAWAL_SHARE * withdrawal
    score = 1.0 - (1.0 - p_imbalance) * (1.0 - p_strain) * (1.0 - p_withdrawal)
    score = round(min(1.0, max(0.0, score)), 4)

    drivers: list[Driver] = []
    by_label = Counter(p.label for p in labor)
    if p_imbalance >= 0.1:
        what = "、".join(f"{_LABOR_NAMES[label]} {n} 次" for label, n in by_label.most_common())
        drivers.append(Driver(
            "one_sided_effort",
            f"近{window_days}天为他人付出:{what};收到的感谢、回应和认可折合 {reward:.1f}(付出/回报比 {ratio:.1f})",
            _newest([(p.created_at, p.post_id) for p in labor]), p_imbalance))
    late = [p for p in labor if p.hour in LATE_NIGHT_HOURS]
    if len(late) >= 3 and len(late) >= 0.25 * len(labor):
        drivers.append(Driver("late_night_work", f"近{window_days}天有 {len(late)} 次在凌晨0-6点回复他人",
                              _newest([(p.created_at, p.post_id) for p in late]), 0.05 * len(late) / len(labor)))
    repeats = [p for p in labor if p.repeat]
    if len(repeats) >= 3:
        drivers.append(Driver("repeated_questions", f"近{window_days}天有 {len(repeats)} 次回答别人已经答过的问题",
                              _newest([(p.created_at, p.post_id) for p in repeats]), 0.05))
    for label, factor, name in (("hostility", "hostility_received", "被攻击"),
                                ("bias_accusation", "bias_accusations_received", "被指责偏袒/收钱")):
        hits = [r for r in history.received if r.label == label]
        if hits:
            drivers.append(Driver(factor, f"近{window_days}天{name} {len(hits)} 次",
                                  _newest([(r.created_at, r.post_id) for r in hits]),
                                  STRAIN_SHARE * STRAIN_WEIGHTS[label] * len(hits) / max(strain, 1e-9) * strain_level))
    if p_withdrawal >= 0.1:
        drivers.append(Driver(
            "withdrawal",
            f"近{recent_days}天发帖 {history.recent_posts} 篇,此前{baseline_days}天平均每{recent_days}天 "
            f"{baseline_rate * weeks_recent:.1f} 篇:活跃度明显低于本人常态", [], p_withdrawal))
    drivers.sort(key=lambda d: (-d.weight, d.factor))
    level = level_of(score)
    return Assessment(
        member_id=history.member_id, as_of=as_of, score=score, level=level, effort=round(effort, 2),
        reward=round(reward, 2), effort_reward_ratio=round(ratio, 2), drivers=drivers,
        recommended_actions=_actions(drivers, level, volume),
        parts={"imbalance": round(p_imbalance, 4), "strain": round(p_strain, 4), "withdrawal": round(p_withdrawal, 4)})


_LABOR_NAMES = {"newcomer_answer": "解答新人问题", "welcome": "欢迎新人", "empathy": "安慰共情",
                "redirect_official": "引导走官方渠道", "mediation": "调解争执"}


def _actions(drivers: Sequence[Driver], level: str, volume: float) -> list[dict[str, str]]:
    factors = {d.factor for d in drivers}
    actions: list[dict[str, str]] = []
    if "one_sided_effort" in factors:
        actions.append({"action": "private_thanks",
                        "detail": "发一条点名具体帖子的私信感谢(GET /v1/members/{id}/thank-you 提供草稿)"})
    if factors & {"hostility_received", "bias_accusations_received"}:
        actions.append({"action": "private_channel",
                        "detail": "私下联系,给一个可以倾诉和反馈的渠道;版主处理针对他/她的攻击"})
    if "repeated_questions" in factors:
        actions.append({"action": "faq", "detail": "把反复被问的问题整理成官方FAQ或置顶帖,减轻重复解答"})
    if "one_sided_effort" in factors and volume >= 0.8:
        actions.append({"action": "nomination", "detail": "提名社群奖项,公开认可其贡献"})
    if LEVEL_ORDER[level] >= LEVEL_ORDER["high"] or factors & {"late_night_work", "withdrawal"}:
        actions.append({"action": "rest_reward",
                        "detail": "给一份以休息为主的回报(如保养券、周末活动),并明确说明不必随时在线"})
    return actions


def window_start(as_of: datetime, days: int) -> datetime:
    return as_of - timedelta(days=days)
