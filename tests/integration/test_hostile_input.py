"""Hostile input against the running stack: nothing 5xx, nothing lost, nothing silently dropped or altered.

What is refused is refused whole with a 4xx naming the field (or `body`) and why; what is accepted comes out of
recognition exactly as sent. The limits are the contract's (api.md) and the README's "Hostile input" list.
"""

import json
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.helpers import eventually, post, uid, visible

LIMIT = 16 * 1024 * 1024  # HTTP__MAX_BODY_BYTES default
JSON = {"content-type": "application/json"}
# One POST route per service that reads a JSON body.
BODY_ROUTES = {"ingest": "/v1/posts", "classifier": "/v1/classify", "recognition": "/v1/members/m-1/acknowledgements"}


def fields(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    return {f["field"]: f["message"] for f in response.json()["fields"]}


def refused(response: httpx.Response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.text[:500]
    return fields(response)


def healthy(stack: Stack, client: httpx.Client) -> None:
    """Every service still answers, and a normal post still goes all the way through."""
    for service in BODY_ROUTES:
        assert httpx.get(f"{stack.url(service)}/healthz", timeout=10).status_code == 200, service
    p = post(uid("p"), thread_id=uid("t"), author_id=uid("u"), content="还活着吗?刚提车求助")
    assert client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": [p]}).status_code == 202
    eventually(lambda: visible(client, stack.url("recognition"), p["post_id"]), timeout=60)


def send(client: httpx.Client, stack: Stack, posts: list[dict[str, Any]]) -> httpx.Response:
    return client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": posts})


# --- size ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(BODY_ROUTES))
def test_oversized_bodies_get_413_declared_or_streamed(stack: Stack, client: httpx.Client, service: str) -> None:
    url = stack.url(service) + BODY_ROUTES[service]
    declared = client.post(url, content=b"[" + b" " * LIMIT + b"]", headers=JSON)
    assert refused(declared, 413) == {"body": f"larger than {LIMIT} bytes"}
    assert declared.json()["error"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for _ in range(17):
            yield b" " * (1024 * 1024)

    streamed = client.post(url, content=chunks(), headers=JSON)
    assert refused(streamed, 413)["body"] == f"larger than {LIMIT} bytes"
    assert httpx.get(f"{stack.url(service)}/healthz", timeout=10).status_code == 200


def test_a_batch_of_maximal_posts_over_the_limit_is_413_and_under_it_all_arrive(stack: Stack,
                                                                                client: httpx.Client) -> None:
    thread = uid("t")
    # 1000 posts of 20,000 Chinese characters: 60 MB of UTF-8, far over the limit, refused before it is read.
    huge = [post(uid("p"), thread_id=thread, author_id=uid("u"), content="刹" * 20000) for _ in range(1000)]
    assert refused(send(client, stack, huge), 413)
    # 150 posts of 20,000 characters (9 MB): under the limit, every one accepted and classified.
    big = [post(uid("p"), thread_id=thread, author_id=uid("u"), content=("刹车异响" * 5000)[:20000])
           for _ in range(150)]
    response = send(client, stack, big)
    assert response.status_code == 202 and response.json() == {"accepted": 150, "duplicates": 0}
    recognition = stack.url("recognition")
    eventually(lambda: all(visible(client, recognition, p["post_id"]) for p in big[-5:]), timeout=120)
    for p in big[::30]:
        assert visible(client, recognition, p["post_id"])["content"] == p["content"]  # type: ignore[index]


def test_more_than_1000_posts_or_items_are_refused_naming_the_list(stack: Stack, client: httpx.Client) -> None:
    many = [post(uid("p"), thread_id="t", author_id="u", content="x") for _ in range(1001)]
    assert "posts" in refused(send(client, stack, many))
    items = client.post(f"{stack.url('classifier')}/v1/classify/batch", json={"items": [{"content": "x"}] * 1001})
    assert "items" in refused(items)


# --- malformed JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(BODY_ROUTES))
def test_deeply_nested_json_is_a_422_naming_the_nesting(stack: Stack, client: httpx.Client, service: str) -> None:
    url = stack.url(service) + BODY_ROUTES[service]
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                 b'{"posts": [{"post_id": "p", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}"):
        assert refused(client.post(url, content=body, headers=JSON)) == {"body": "JSON nested too deeply"}
    # Nesting the parser can read (an ignored extra field 500 levels deep) is no problem at all.
    p = post(uid("p"), thread_id=uid("t"), author_id=uid("u"), content="嵌套")
    p["extra"] = json.loads("[" * 500 + "]" * 500)
    if service == "ingest":
        assert send(client, stack, [p]).status_code == 202
    healthy(stack, client)


def test_huge_or_odd_json_is_a_422_naming_what_is_wrong(stack: Stack, client: httpx.Client) -> None:
    url = stack.url("ingest") + "/v1/posts"
    many_keys = ("{" + ",".join(f'"k{i}":{i}' for i in range(700_000)) + "}").encode()  # 12 MB, under the limit
    assert len(many_keys) < LIMIT
    assert refused(client.post(url, content=many_keys, headers=JSON)) == {"posts": "Field required"}
    digits = client.post(url, content=b'{"posts": 1' + b"0" * 100_000 + b"}", headers=JSON)
    assert refused(digits) == {"body": "a JSON number has too many digits"}
    broken = refused(client.post(url, content=b'{"posts": [}', headers=JSON))
    assert broken["body"].startswith("not valid JSON at character 11")
    nan = {"posts": [post(uid("p"), thread_id="t", author_id="u", content="x")]}
    nan["posts"][0]["content"] = float("nan")
    assert "posts.0.content" in refused(client.post(url, content=json.dumps(nan).encode(), headers=JSON))
    assert "body" in refused(client.post(url, content=b"", headers=JSON))
    assert "body" in refused(client.post(url, content=b"[]", headers=JSON))  # not an object
    healthy(stack, client)


@pytest.mark.parametrize("service", list(BODY_ROUTES))
def test_invalid_utf8_is_a_422_saying_so(stack: Stack, client: httpx.Client, service: str) -> None:
    url = stack.url(service) + BODY_ROUTES[service]
    for raw in (b"\xff\xfe", b"\xc0\xaf", "刹".encode()[:2]):  # a bad start byte, an overlong form, a cut character
        body = b'{"content": "' + raw + b'", "posts": [], "kind": "gift"}'
        message = refused(client.post(url, content=body, headers=JSON))["body"]
        assert message.startswith("not valid UTF-8"), message


def test_escaped_lone_surrogates_and_nul_are_refused_naming_the_field(stack: Stack, client: httpx.Client) -> None:
    url = stack.url("ingest") + "/v1/posts"
    lone = b'{"posts": [{"post_id": "p-x", "thread_id": "t", "author_id": "u", "content": "a\\udc00b", ' \
           b'"created_at": "2026-03-01T20:15:00+08:00"}]}'
    assert "posts.0.content" in refused(client.post(url, content=lone, headers=JSON))
    # A surrogate encoded as UTF-8 bytes (which Python's JSON decoder lets through) is caught on the field.
    encoded = lone.replace(b"\\udc00", b"\xed\xb0\x80")
    assert "posts.0.content" in refused(client.post(url, content=encoded, headers=JSON))
    nul = post(uid("p"), thread_id="t", author_id="u", content="a\x00b")
    assert refused(send(client, stack, [nul]))["posts.0.content"] == "Value error, must not contain NUL characters"
    classify = client.post(f"{stack.url('classifier')}/v1/classify", json={"content": "a\x00b"})
    assert "content" in refused(classify)


# --- unusual but valid content -----------------------------------------------------------------------------------

ODD = ("刹车\u200b异响\u200c\u200d\ufeff,\u202e反转文字\u202c\x01\x07\x1b[31m红色\x1b[0m\x7f\x85\u2028"
       "\r\n\t结束 e\u0301 👩\u200d🔧 \U0001f600")


def test_control_and_zero_width_characters_are_kept_exactly(stack: Stack, client: httpx.Client) -> None:
    """api.md: content is 1 to 20000 characters; only NUL (which no database stores) is refused. Everything
    else, control characters, zero-width and bidi marks included, is stored and classified unaltered."""
    thread = uid("t")
    p = post(uid("p") + "\u200d", thread_id=thread, author_id=uid("u"), content=ODD, title="标题\u200b\x1b")
    p["author"]["display_name"] = "小\u200b李\u202e"
    response = send(client, stack, [p])
    assert response.status_code == 202 and response.json() == {"accepted": 1, "duplicates": 0}
    recognition = stack.url("recognition")
    seen = eventually(lambda: visible(client, recognition, urllib.parse.quote(p["post_id"])), timeout=60)
    assert seen["post_id"] == p["post_id"] and seen["content"] == ODD and seen["title"] == p["title"]
    assert seen["author"]["display_name"] == p["author"]["display_name"]
    assert len(seen["classification"]["scores"]) == 16
    classified = client.post(f"{stack.url('classifier')}/v1/classify", json={"content": ODD, "title": "\u200b"})
    assert classified.status_code == 200 and len(classified.json()["scores"]) == 16
    # A control character or whitespace in an id is refused (ids are path segments); zero-width ones are not.
    for bad in ("p\x01", "p q", "p\u3000q", "p\x85q", ""):
        assert "posts.0.post_id" in refused(send(client, stack, [{**p, "post_id": bad}])), repr(bad)


def test_one_token_as_long_as_content_may_be_is_processed(stack: Stack, client: httpx.Client) -> None:
    """api.md caps content at 20,000 characters: a single unbroken 20,000-character token goes through the
    pipeline; a 100,000-character one is refused naming the field, on ingest and on the classifier alike."""
    thread = uid("t")
    tokens = [post(uid("p"), thread_id=thread, author_id=uid("u"), content=c)
              for c in ("a" * 20000, "刹" * 20000, "😭" * 20000, "x" * 19999 + "!")]
    assert send(client, stack, tokens).json() == {"accepted": 4, "duplicates": 0}
    for p in tokens:
        seen = eventually(lambda p=p: visible(client, stack.url("recognition"), p["post_id"]), timeout=60)
        assert seen["content"] == p["content"]
    too_long = post(uid("p"), thread_id=thread, author_id=uid("u"), content="a" * 100_000)
    assert "posts.0.content" in refused(send(client, stack, [too_long]))
    classifier = stack.url("classifier")
    assert client.post(f"{classifier}/v1/classify", json={"content": "好" * 20000,
                                                         "parent_content": "a" * 20000}).status_code == 200
    assert "content" in refused(client.post(f"{classifier}/v1/classify", json={"content": "a" * 100_000}))
    assert "parent_content" in refused(client.post(f"{classifier}/v1/classify",
                                                   json={"content": "a", "parent_content": "a" * 100_000}))


# --- volume and identity -----------------------------------------------------------------------------------------


def test_ten_thousand_posts_in_one_thread_all_arrive(stack: Stack, client: httpx.Client) -> None:
    thread, run = uid("t"), uid("big")
    authors = [f"{run}-u{i}" for i in range(20)]
    ids = [f"{run}-p{i}" for i in range(10_000)]
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for batch in range(10):
        posts = [post(ids[i], thread_id=thread, author_id=authors[i % 20], reply_to=ids[i - 1] if i else None,
                      content=f"第{i}楼:冷车第一脚刹车异响,大家有遇到吗" if i % 3 else "谢谢楼上,有用",
                      created_at=(start + timedelta(seconds=i)).isoformat(), title="刹车异响")
                 for i in range(batch * 1000, batch * 1000 + 1000)]
        response = send(client, stack, posts)
        assert response.status_code == 202 and response.json() == {"accepted": 1000, "duplicates": 0}
    recognition = stack.url("recognition")

    def counted() -> int:
        return sum(client.get(f"{recognition}/v1/members/{a}").json().get("posts", 0) for a in authors)

    eventually(lambda: counted() == 10_000, timeout=240, interval=1)
    for i in (0, 1, 4999, 9998, 9999):
        seen = visible(client, recognition, ids[i])
        assert seen is not None and seen["thread_id"] == thread
        assert seen["reply_to_post_id"] == (ids[i - 1] if i else None)


def test_duplicate_ids_inside_one_batch_first_wins_and_the_rest_are_counted(stack: Stack,
                                                                            client: httpx.Client) -> None:
    """Documented (README, ingest): within a batch the first occurrence of an id is the one accepted; later ones are
    duplicates, counted in the response like an id accepted earlier, never published."""
    thread, author = uid("t"), uid("u")
    first = post(uid("p"), thread_id=thread, author_id=author, content="第一版")
    second = {**first, "content": "第二版"}
    other = post(uid("p"), thread_id=thread, author_id=author, content="别的帖子")
    response = send(client, stack, [first, second, other, first])
    assert response.status_code == 202 and response.json() == {"accepted": 2, "duplicates": 2}
    recognition = stack.url("recognition")
    eventually(lambda: visible(client, recognition, other["post_id"]), timeout=60)
    assert visible(client, recognition, first["post_id"])["content"] == "第一版"  # type: ignore[index]
    member = client.get(f"{recognition}/v1/members/{author}").json()
    assert member["posts"] == 2

    r = {"reaction_id": uid("r"), "post_id": other["post_id"], "from_author_id": uid("u"), "kind": "thanks",
         "created_at": "2026-03-01T21:00:00+08:00"}
    reactions = client.post(f"{stack.url('ingest')}/v1/reactions", json={"reactions": [r, {**r, "kind": "like"}, r]})
    assert reactions.status_code == 202 and reactions.json() == {"accepted": 1, "duplicates": 2}


def test_an_invalid_record_refuses_the_whole_batch_and_stores_none_of_it(stack: Stack, client: httpx.Client) -> None:
    good = post(uid("p"), thread_id=uid("t"), author_id=uid("u"), content="好帖子")
    bad = post(uid("p"), thread_id=uid("t"), author_id=uid("u"), content="")
    assert set(refused(send(client, stack, [good, bad]))) == {"posts.1.content"}
    assert send(client, stack, [good]).json() == {"accepted": 1, "duplicates": 0}


# --- time --------------------------------------------------------------------------------------------------------


def test_timestamps_from_1990_to_a_day_ahead_are_accepted_others_refused_naming_the_field(
        stack: Stack, client: httpx.Client) -> None:
    """Documented (README): created_at and joined_at are RFC 3339 with an offset, from 1990-01-01 to one day after
    the server's clock; anything else is a unit mix-up or a broken clock and is refused, never shifted or clamped."""
    now = datetime.now(UTC)
    thread, author = uid("t"), uid("u")
    accepted = {"1990-01-01T00:00:00Z": None, "1990-01-01T08:00:00+08:00": None,
                (now + timedelta(hours=23)).isoformat(): None, "2026-03-01T20:15:00.123456-11:30": None}
    for created_at in accepted:
        p = post(uid("p"), thread_id=thread, author_id=author, content="时间边界", created_at=created_at)
        assert send(client, stack, [p]).status_code == 202, created_at
        accepted[created_at] = p["post_id"]
    recognition = stack.url("recognition")
    for created_at, post_id in accepted.items():
        seen = eventually(lambda post_id=post_id: visible(client, recognition, post_id), timeout=60)
        assert datetime.fromisoformat(seen["created_at"]) == datetime.fromisoformat(created_at)

    refusals = {
        "1989-12-31T23:59:59Z": "must not be before 1990-01-01",
        "1990-01-01T07:59:59+08:00": "must not be before 1990-01-01",
        "0001-01-01T00:00:00Z": "must not be before 1990-01-01",
        (now + timedelta(days=2)).isoformat(): "must not be more than one day in the future",
        "9999-12-31T23:59:59-23:59": "must not be more than one day in the future",
        "2026-03-01T20:15:00": "RFC 3339",
        "2026-03-01T20:15+08:00": "RFC 3339",
        "2026-03-01": "RFC 3339",
        "1772367300": "RFC 3339",
        "2026-02-30T20:15:00+08:00": "",
        "2026-03-01T20:15:00+24:00": "",
    }
    for created_at, why in refusals.items():
        p = post(uid("p"), thread_id=thread, author_id=author, content="坏时间", created_at=created_at)
        assert why in refused(send(client, stack, [p]))["posts.0.created_at"], created_at
    numeric = post(uid("p"), thread_id=thread, author_id=author, content="数字时间")
    numeric["created_at"] = 1772367300
    assert "RFC 3339" in refused(send(client, stack, [numeric]))["posts.0.created_at"]
    ancient_member = post(uid("p"), thread_id=thread, author_id=author, content="老会员")
    ancient_member["author"]["joined_at"] = "1900-01-01T00:00:00+08:00"
    assert "posts.0.author.joined_at" in refused(send(client, stack, [ancient_member]))
    reaction = {"reaction_id": uid("r"), "post_id": "p", "from_author_id": "u", "kind": "like",
                "created_at": "3000-01-01T00:00:00Z"}
    assert "reactions.0.created_at" in refused(client.post(f"{stack.url('ingest')}/v1/reactions",
                                                           json={"reactions": [reaction]}))
    for as_of in ("1900-01-01T00:00:00Z", "3000-01-01T00:00:00Z", "yesterday"):
        response = client.get(f"{recognition}/v1/members/{author}", params={"as_of": as_of})
        assert "as_of" in refused(response), as_of
