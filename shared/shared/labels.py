"""The label vocabulary of ../shared/spec/labels.md: exact strings used by the API, events, metrics and data."""

from typing import Literal, get_args

FlawLabel = Literal[
    "defect_complaint",
    "defect_report",
    "defect_hypothesis",
    "defect_workaround",
    "quirk_framing",
    "defect_framing",
]
LaborLabel = Literal["newcomer_answer", "welcome", "empathy", "redirect_official", "mediation"]
SignalLabel = Literal["venting", "hostility", "bias_accusation", "gratitude", "newcomer_question"]
Label = Literal[FlawLabel, LaborLabel, SignalLabel]

Component = Literal[
    "infotainment",
    "body",
    "interior",
    "hvac",
    "powertrain",
    "battery_charging",
    "chassis",
    "adas",
    "electrical",
    "app",
    "other",
]
Condition = Literal["cold", "heat", "rain", "speed", "rough_road", "batch", "software_version", "driving_habit"]

FLAW_LABELS: tuple[str, ...] = get_args(FlawLabel)
LABOR_LABELS: tuple[str, ...] = get_args(LaborLabel)
SIGNAL_LABELS: tuple[str, ...] = get_args(SignalLabel)
LABELS: tuple[str, ...] = FLAW_LABELS + LABOR_LABELS + SIGNAL_LABELS
COMPONENTS: tuple[str, ...] = get_args(Component)
CONDITIONS: tuple[str, ...] = get_args(Condition)

# Research moves of the flaw lifecycle: credited to the author as technical contribution, not emotional labor.
RESEARCH_LABELS: tuple[str, ...] = ("defect_report", "defect_hypothesis", "defect_workaround")
# Signals that land on the author of the post replied to, not on the post's author.
RECEIVED_LABELS: tuple[str, ...] = ("gratitude", "hostility", "bias_accusation")

assert len(LABELS) == 16 and len(set(LABELS)) == 16
