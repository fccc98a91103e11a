"""The four awards: what each one rewards, and how a member's window of posts becomes a ranked nomination.

Every award scores two things, both from the ledger: the member's own credited posts of the award's labels
(at most the daily cap per label and day), and the *echo*: replies by other members to those posts that
thank them or confirm them (the part that is hard to game, because someone else has to write it).
"""

from dataclasses import dataclass
from typing import Literal, get_args

Award = Literal["community_contribution", "newcomer_mentor", "peacemaker", "research_pioneer"]
AWARDS: tuple[str, ...] = get_args(Award)


@dataclass(frozen=True)
class Rule:
    title: str
    own: dict[str, float]
    echo: dict[str, float]


RULES: dict[str, Rule] = {
    "community_contribution": Rule(
        "年度最佳社群贡献奖",
        own={"newcomer_answer": 1.0, "welcome": 0.5, "empathy": 1.0, "redirect_official": 0.8, "mediation": 1.5,
             "defect_report": 0.3, "defect_hypothesis": 0.8, "defect_workaround": 0.8},
        echo={"gratitude": 1.0}),
    "newcomer_mentor": Rule(
        "最受新人欢迎导师奖",
        own={"newcomer_answer": 1.0, "welcome": 0.6},
        echo={"gratitude": 1.0}),
    "peacemaker": Rule(
        "最佳调解员",
        own={"mediation": 2.0, "empathy": 0.7},
        echo={"gratitude": 1.0}),
    # The technical member whose reports, hypotheses and workarounds others confirm and thank.
    "research_pioneer": Rule(
        "技术研究先锋",
        own={"defect_report": 0.3, "defect_hypothesis": 1.0, "defect_workaround": 1.2},
        echo={"gratitude": 1.0, "defect_report": 0.8, "defect_workaround": 1.0}),
}

LABEL_NAMES = {
    "newcomer_answer": "解答新人问题", "welcome": "欢迎新人", "empathy": "安慰共情",
    "redirect_official": "引导走官方渠道", "mediation": "调解争执", "defect_report": "问题报告",
    "defect_hypothesis": "原因分析", "defect_workaround": "解决办法",
}
ECHO_NAMES = {"gratitude": "感谢", "defect_report": "他人确认", "defect_workaround": "他人照做验证"}


@dataclass
class Candidate:
    member_id: str
    display_name: str | None
    own: dict[str, int]
    echo: dict[str, int]

    def score(self, rule: Rule) -> float:
        return round(sum(rule.own[label] * n for label, n in self.own.items())
                     + sum(rule.echo[label] * n for label, n in self.echo.items()), 3)


def summary(candidate: Candidate, rule: Rule, *, since: str, until: str) -> str:
    name = candidate.display_name or candidate.member_id
    did = "、".join(f"{LABEL_NAMES[label]} {n} 次" for label, n in
                    sorted(candidate.own.items(), key=lambda kv: (-kv[1], kv[0])) if n)
    got = "、".join(f"{ECHO_NAMES[label]} {n} 次" for label, n in
                    sorted(candidate.echo.items(), key=lambda kv: (-kv[1], kv[0])) if n)
    text = f"{name} 在 {since} 至 {until} 期间:{did}"
    if got:
        text += f";其他车友的回应:{got}"
    return text + "。"
