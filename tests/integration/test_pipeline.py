"""The promises of the pipeline, against the real broker, real databases and the services as processes."""

import httpx

from devstack.stack import Stack
from tests.conftest import READER_TOKEN
from tests.helpers import eventually, post, uid, visible


def test_post_goes_in_over_http_and_comes_out_classified(stack: Stack, client: httpx.Client) -> None:
    thread, asker, helper = uid("t"), uid("u"), uid("u")
    question = post(uid("p"), thread_id=thread, author_id=asker,
                    content="刚提车一周,新手想问下自动驻车在哪里打开?找了半天没找到")
    answer = post(uid("p"), thread_id=thread, author_id=helper, reply_to=question["post_id"],
                  content="别着急,在中控屏设置-驾驶辅助里面,把自动驻车那个开关打开就行,踩刹车到底会有提示",
                  created_at="2026-03-01T20:20:00+08:00")
    response = client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": [question, answer]})
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicates": 0}

    got = eventually(lambda: visible(client, stack.url("recognition"), answer["post_id"]))
    assert got["content"] == answer["content"]
    assert got["reply_to_post_id"] == question["post_id"]
    assert got["target_author_id"] == asker
    classification = got["classification"]
    assert set(classification["scores"]) == {
        "defect_complaint", "defect_report", "defect_hypothesis", "defect_workaround", "quirk_framing",
        "defect_framing", "newcomer_answer", "welcome", "empathy", "redirect_official", "mediation", "venting",
        "hostility", "bias_accusation", "gratitude", "newcomer_question"}
    assert all(0.0 <= v <= 1.0 for v in classification["scores"].values())
    assert classification["model_version"]
    assert "newcomer_answer" in classification["labels"]
    asked = eventually(lambda: visible(client, stack.url("recognition"), question["post_id"]))
    assert "newcomer_question" in asked["classification"]["labels"]


def test_same_post_twice_is_counted_once_everywhere(stack: Stack, client: httpx.Client) -> None:
    thread, asker, helper = uid("t"), uid("u"), uid("u")
    question = post(uid("p"), thread_id=thread, author_id=asker, content="新手求问,保养多久做一次比较合适?")
    thanks = post(uid("p"), thread_id=thread, author_id=asker, reply_to=None, content="占个楼")
    answer = post(uid("p"), thread_id=thread, author_id=helper, reply_to=question["post_id"],
                  content="一般一年或者一万公里做一次,app里可以直接预约,不用担心",
                  created_at="2026-03-01T20:30:00+08:00")
    reaction = {"reaction_id": uid("r"), "post_id": answer["post_id"], "from_author_id": asker, "kind": "helpful",
                "created_at": "2026-03-01T21:00:00+08:00"}
    ingest = stack.url("ingest")
    first = client.post(f"{ingest}/v1/posts", json={"posts": [question, answer, thanks]})
    assert first.json() == {"accepted": 3, "duplicates": 0}
    # Again, and once more with an in-batch duplicate.
    second = client.post(f"{ingest}/v1/posts", json={"posts": [question, answer]})
    assert second.json() == {"accepted": 0, "duplicates": 2}
    third = client.post(f"{ingest}/v1/posts", json={"posts": [answer, answer]})
    assert third.json() == {"accepted": 0, "duplicates": 2}
    assert client.post(f"{ingest}/v1/reactions", json={"reactions": [reaction]}).json() == {"accepted": 1,
                                                                                           "duplicates": 0}
    assert client.post(f"{ingest}/v1/reactions", json={"reactions": [reaction, reaction]}).json() == {
        "accepted": 0, "duplicates": 2}

    recognition = stack.url("recognition")
    eventually(lambda: visible(client, recognition, answer["post_id"]))

    def helper_view() -> dict | None:
        response = client.get(f"{recognition}/v1/members/{helper}")
        body = response.json() if response.status_code == 200 else None
        return body if body and body["received"]["reactions"] == 1 else None

    member = eventually(helper_view)
    assert member["posts"] == 1
    assert member["labor"]["newcomer_answer"] == 1
    asker_view = client.get(f"{recognition}/v1/members/{asker}").json()
    assert asker_view["posts"] == 2


def test_unknown_ids_are_404_and_bad_input_names_the_field(stack: Stack, client: httpx.Client) -> None:
    recognition, ingest = stack.url("recognition"), stack.url("ingest")
    missing = client.get(f"{recognition}/v1/posts/{uid('nope')}")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert client.get(f"{recognition}/v1/members/{uid('nobody')}").status_code == 404

    bad = post(uid("p"), thread_id="t", author_id="u", content="")
    bad["created_at"] = "2026-03-01T20:15:00"  # no offset
    response = client.post(f"{ingest}/v1/posts", json={"posts": [bad]})
    assert response.status_code == 422
    fields = {f["field"] for f in response.json()["fields"]}
    assert {"posts.0.content", "posts.0.created_at"} <= fields
    assert client.post(f"{ingest}/v1/posts", json={"posts": []}).status_code == 422
    assert client.post(f"{ingest}/v1/posts", content=b"{not json", headers={"content-type": "application/json"}
                       ).status_code == 422


def test_oversized_body_is_413(stack: Stack, client: httpx.Client) -> None:
    huge = b'{"posts": [' + b" " * (17 * 1024 * 1024) + b"]}"
    response = client.post(f"{stack.url('ingest')}/v1/posts", content=huge,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_auth_401_without_token_and_403_without_scope(stack: Stack) -> None:
    body = {"posts": [post(uid("p"), thread_id="t", author_id="u", content="hi")]}
    ingest, recognition, classifier = stack.url("ingest"), stack.url("recognition"), stack.url("classifier")
    assert httpx.post(f"{ingest}/v1/posts", json=body).status_code == 401
    wrong = httpx.post(f"{ingest}/v1/posts", json=body, headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    reader = {"Authorization": f"Bearer {READER_TOKEN}"}
    assert httpx.post(f"{ingest}/v1/posts", json=body, headers=reader).status_code == 403
    assert httpx.post(f"{ingest}/v1/reactions", json={"reactions": []}, headers=reader).status_code == 403
    assert httpx.get(f"{recognition}/v1/posts/x").status_code == 401
    assert httpx.get(f"{recognition}/v1/posts/{uid('x')}", headers=reader).status_code == 404
    assert httpx.post(f"{classifier}/v1/classify", json={"content": "你好"}).status_code == 401
    assert httpx.post(f"{classifier}/v1/classify", json={"content": "你好"}, headers=reader).status_code == 200
    for service in ("ingest", "classifier", "recognition"):
        assert httpx.get(f"{stack.url(service)}/healthz").status_code == 200
        assert httpx.get(f"{stack.url(service)}/readyz").status_code == 200
        assert "anchor_http_requests_total" in httpx.get(f"{stack.url(service)}/metrics").text


def test_a_redelivered_classified_event_is_counted_once(stack: Stack, client: httpx.Client) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    from shared import topics
    from shared.events import Classification, ClassifiedPostEvent, new_envelope

    author, target = uid("u"), uid("u")
    thread = uid("t")
    parent = post(uid("p"), thread_id=thread, author_id=target, content="有人知道胎压怎么看吗")
    assert client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": [parent]}).status_code == 202
    eventually(lambda: visible(client, stack.url("recognition"), parent["post_id"]))
    scores = dict.fromkeys(("gratitude", "newcomer_answer"), 0.0) | {"gratitude": 0.9}
    event = ClassifiedPostEvent(
        **post(uid("p"), thread_id=thread, author_id=author, reply_to=parent["post_id"], content="谢谢!"),
        **new_envelope(),
        classification=Classification(labels=["gratitude"], scores=scores, model_version="test"))  # type: ignore[arg-type]

    async def publish_twice() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            for _ in range(2):
                await producer.send_and_wait(topics.CLASSIFIED, key=thread.encode(),
                                             value=event.model_dump_json().encode())
        finally:
            await producer.stop()

    asyncio.run(publish_twice())
    eventually(lambda: visible(client, stack.url("recognition"), event.post_id))
    marker = post(uid("p"), thread_id=thread, author_id=author, content="再顶一下")
    client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": [marker]})
    eventually(lambda: visible(client, stack.url("recognition"), marker["post_id"]))  # same partition: after both
    member = client.get(f"{stack.url('recognition')}/v1/members/{author}").json()
    assert member["posts"] == 2
    received = client.get(f"{stack.url('recognition')}/v1/members/{target}").json()["received"]
    assert received["gratitude"] == 1


def test_duplicates_are_detected_across_an_ingest_restart(stack: Stack, client: httpx.Client) -> None:
    first = post(uid("p"), thread_id=uid("t"), author_id=uid("u"), content="重启前发的帖子")
    ingest = stack.url("ingest")
    assert client.post(f"{ingest}/v1/posts", json={"posts": [first]}).json() == {"accepted": 1, "duplicates": 0}
    stack.children["ingest"].stop()
    stack.start_service("ingest")
    again = client.post(f"{ingest}/v1/posts", json={"posts": [first]})
    assert again.json() == {"accepted": 0, "duplicates": 1}
