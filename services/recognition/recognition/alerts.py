"""When to alert: once per crossing, never on every event. Pure, so the rules are unit-tested on their own.

Each subject (a member, a topic, a venting post) has a stored state. An alert fires when the state crosses
into an alerting one; leaving it re-arms the alert, so a member who recovers and then slips again is
alerted again.
"""

from dataclasses import dataclass
from typing import Any

from recognition import risk

BURNOUT, VENTING, DEFECT = "burnout_risk", "unanswered_venting", "defect_escalation"


@dataclass(frozen=True, slots=True)
class Crossing:
    key: str
    kind: str
    old: str | None
    new: str
    alert: bool
    message_key: str
    payload: dict[str, Any]


def risk_state(level: str) -> str:
    return "high" if risk.LEVEL_ORDER[level] >= risk.LEVEL_ORDER["high"] else "below"


def topic_state(*, escalating: bool, safety_review: bool) -> str:
    return "".join(flag for flag, on in (("escalating", escalating), ("+safety_review", safety_review)) if on) or "calm"


def topic_flags(state: str | None) -> set[str]:
    return {f for f in (state or "").replace("+", " ").split() if f != "calm"}


Desired = dict[str, tuple[str, str, dict[str, Any]]]


def crossings(kind: str, previous: dict[str, str], desired: Desired) -> list[Crossing]:
    """`desired` maps a state key to (new state, Kafka message key, alert payload). Subjects whose state is
    unchanged produce nothing; a subject never seen before starts from "nothing to alert about"."""
    out = []
    for key, (new, message_key, payload) in sorted(desired.items()):
        old = previous.get(key)
        if old == new:
            continue
        if kind == BURNOUT:
            alert = new == "high"
        elif kind == DEFECT:
            alert = bool(topic_flags(new) - topic_flags(old))
        else:
            alert = new == "unanswered"
        if old is None and not alert:
            continue  # nothing to remember about subjects that never alerted
        out.append(Crossing(key, kind, old, new, alert, message_key, payload))
    return out
