"""Community health over a window: is venting met with empathy, are newcomers answered, how hostile is it,
and how concentrated is the emotional labor (the few who would leave a hole)."""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Need:
    """A post that calls for a reply (venting, a newcomer's question) and the first reply that met it."""

    post_id: str
    created_at: datetime
    first_reply_at: datetime | None


def share(needs: Sequence[Need]) -> float | None:
    return round(sum(n.first_reply_at is not None for n in needs) / len(needs), 4) if needs else None


def minutes_to_reply(needs: Sequence[Need]) -> dict[str, float | None]:
    waits = sorted((n.first_reply_at - n.created_at).total_seconds() / 60 for n in needs if n.first_reply_at)
    if not waits:
        return {"median": None, "p90": None}
    p90 = waits[min(len(waits) - 1, round(0.9 * (len(waits) - 1)))]
    return {"median": round(statistics.median(waits), 1), "p90": round(p90, 1)}


def concentration(labor_by_member: dict[str, float]) -> dict[str, float | int | None]:
    """Share of all labor done by the top five members, and the fewest members who do half of it."""
    values = sorted(labor_by_member.values(), reverse=True)
    total = sum(values)
    if total <= 0:
        return {"top5_share": None, "members_doing_half": 0, "members_doing_labor": 0}
    running, half = 0.0, 0
    for half, value in enumerate(values, 1):  # noqa: B007 - the count is the result
        running += value
        if running >= total / 2:
            break
    return {"top5_share": round(sum(values[:5]) / total, 4), "members_doing_half": half,
            "members_doing_labor": len(values)}
