from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.events import Post, PostEvent, Reaction, new_envelope

BASE = {"post_id": "p-1", "thread_id": "t-1", "author_id": "u-1", "content": "刚提车",
        "created_at": "2026-03-01T20:15:00+08:00"}


def _fields(exc: ValidationError) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in exc.errors()}


def test_api_md_example_is_valid_and_round_trips_as_an_event() -> None:
    post = Post.model_validate(BASE | {"reply_to_post_id": None, "title": "新手求助", "source": "app",
                                       "author": {"display_name": "小李", "joined_at": "2026-02-27T00:00:00+08:00",
                                                  "is_official": False}})
    event = PostEvent(**post.model_dump(), **new_envelope())
    again = PostEvent.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.schema_version == 1 and again.event_id


@pytest.mark.parametrize(("change", "field"), [
    ({"content": ""}, "content"),
    ({"content": "x" * 20001}, "content"),
    ({"content": "a\x00b"}, "content"),
    ({"content": "bad \ud800 surrogate"}, "content"),
    ({"created_at": "2026-03-01T20:15:00"}, "created_at"),
    ({"created_at": "1970-01-01T00:00:00+00:00"}, "created_at"),
    ({"created_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()}, "created_at"),
    ({"post_id": ""}, "post_id"),
    ({"post_id": "has space"}, "post_id"),
    ({"thread_id": "x" * 129}, "thread_id"),
    ({"post_id": "p\x85q"}, "post_id"),
    ({"post_id": "p\u3000q"}, "post_id"),
    ({"created_at": 1772367300}, "created_at"),
    ({"created_at": "1772367300"}, "created_at"),
    ({"created_at": "2026-03-01T20:15+08:00"}, "created_at"),
    ({"author": {"is_official": "yes"}}, "author.is_official"),
    ({"author": {"is_official": 1}}, "author.is_official"),
])
def test_invalid_posts_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Post.model_validate(BASE | change)
    assert field in _fields(exc.value)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert Post.model_validate(BASE | {"mood": "happy"}).post_id == "p-1"


def test_reaction_kind_is_checked() -> None:
    ok = {"reaction_id": "r", "post_id": "p", "from_author_id": "u", "kind": "thanks",
          "created_at": "2026-03-01T21:00:00+08:00"}
    assert Reaction.model_validate(ok).kind == "thanks"
    with pytest.raises(ValidationError) as exc:
        Reaction.model_validate(ok | {"kind": "love"})
    assert "kind" in _fields(exc.value)


def test_the_openapi_schema_states_what_the_validators_enforce() -> None:
    """The id pattern means the same in every regex engine (no `\\s`), and the NUL ban is in the schema, so a
    client or schemathesis generating from the OpenAPI schema only makes values the service accepts."""
    import re

    from shared.events import ID_PATTERN

    schema = Post.model_json_schema()
    assert schema["properties"]["post_id"]["pattern"] == ID_PATTERN and "\\s" not in ID_PATTERN
    assert schema["properties"]["content"]["pattern"] == "^[^\\x00]*$"
    assert schema["$defs"]["Author"]["properties"]["is_official"]["type"] == "boolean"
    for ok in ("p-1", "帖子\u200b1", "a\ufeffb"):
        assert re.fullmatch(ID_PATTERN, ok) and Post.model_validate(BASE | {"post_id": ok})
    for bad in ("a b", "a\tb", "a\x85b", "a\xa0b", "a\u2028b", "a\u3000b", "a\x7fb"):
        assert not re.fullmatch(ID_PATTERN, bad)
        with pytest.raises(ValidationError):
            Post.model_validate(BASE | {"post_id": bad})


@pytest.mark.parametrize("created_at", ["2026-03-01T20:15:00Z", "2026-03-01t20:15:00z", "2026-03-01 20:15:00+08:00",
                                        "2026-03-01T20:15:00.123456-11:30", "1990-01-01T00:00:00Z"])
def test_rfc3339_date_times_with_an_offset_are_accepted(created_at: str) -> None:
    assert Post.model_validate(BASE | {"created_at": created_at}).created_at.tzinfo is not None
