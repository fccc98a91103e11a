"""The classifier publishes each classified post's JSON spliced from its two validated parts; it must be exactly
what the `ClassifiedPostEvent` model would serialize, and what recognition decodes back to the same event."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from classifier.service import classified_value
from shared.events import Classification, ClassifiedPostEvent, EvidenceSpan, PostEvent, new_envelope

RESULT = Classification(labels=["defect_report", "venting"], scores={"defect_report": 0.9493, "venting": 0.61},
                        component="body", conditions=["rain"], model_version="hybrid-test",
                        evidence=[EvidenceSpan(label="defect_report", text="门把手\"进水\"\\了")])
BASE = {"post_id": "p-1", "thread_id": "t-1", "author_id": "u-1", "content": "下雨天门把手进水😡\n又冻住了",
        "created_at": "2026-03-01T20:15:00+08:00"}


@pytest.mark.parametrize("extra", [
    {},
    {"reply_to_post_id": "p-0", "parent": {"post_id": "p-0", "author_id": "u-2", "content": "有人门把手进水吗?"}},
    {"title": "门把手", "source": "app", "author": {"display_name": "老张", "joined_at": "2025-01-01T00:00:00Z",
                                                    "is_official": True}},
    {"created_at": "2026-03-01T12:15:00.123456Z", "content": "\u200b零宽\t\u3000全角"},
])
@pytest.mark.parametrize("classified_at", [datetime(2026, 3, 1, 12, 16, tzinfo=UTC),
                                           datetime(2026, 3, 1, 20, 16, 0, 5, tzinfo=timezone(timedelta(hours=8)))])
@pytest.mark.parametrize("result", [RESULT, Classification(labels=[], scores={}, model_version="v")])
def test_spliced_json_is_the_models_own(extra: dict, classified_at: datetime, result: Classification) -> None:
    event = PostEvent.model_validate(BASE | extra | new_envelope())
    model = ClassifiedPostEvent(**event.model_dump(), classification=result, classified_at=classified_at)
    value = classified_value(event, result, classified_at)
    assert value == model.model_dump_json().encode()
    assert ClassifiedPostEvent.model_validate_json(value) == model
