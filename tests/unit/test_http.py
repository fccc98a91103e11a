"""The shared HTTP layer on a real app, in process: error bodies, body limit, route-template metrics."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest.app import create_app
from ingest.config import IngestSettings
from shared import metrics
from shared.settings import AuthSettings, HttpSettings, KafkaSettings, TokenSpec
from tests.helpers import eventually


@pytest.fixture
def app(tmp_path) -> FastAPI:
    settings = IngestSettings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                              auth=AuthSettings(tokens=[TokenSpec(name="t", token="tok", scopes=["ingest"])]),
                              http=HttpSettings(max_body_bytes=4096))
    settings.database.url = f"sqlite:///{tmp_path / 'ingest.db'}"
    return create_app(settings)


def test_body_limit_error_body_and_route_template_metrics(app: FastAPI) -> None:
    with TestClient(app) as client:  # runs the lifespan (no broker here: ingest still answers, not ready)
        eventually(lambda: app.state.database.initialized.is_set(), timeout=10)
        big = client.post("/v1/posts", content=b"x" * 5000, headers={"Authorization": "Bearer tok"})
        assert big.status_code == 413
        assert big.json()["fields"][0]["field"] == "body"

        def chunks():
            for _ in range(10):
                yield b"y" * 1000

        streamed = client.post("/v1/posts", content=chunks(), headers={"Authorization": "Bearer tok"})
        assert streamed.status_code == 413

        bad = client.post("/v1/posts", json={"posts": [{"post_id": "p"}]}, headers={"Authorization": "Bearer tok"})
        assert bad.status_code == 422
        assert {f["field"] for f in bad.json()["fields"]} >= {"posts.0.thread_id", "posts.0.content"}

        before = metrics.HTTP_REQUESTS.labels("ingest", "GET", "/healthz", "200")._value.get()
        assert client.get("/healthz").status_code == 200
        assert metrics.HTTP_REQUESTS.labels("ingest", "GET", "/healthz", "200")._value.get() == before + 1
        client.get("/no/such/path/123")
        text = (client.get("/metrics")).text
        assert 'route="unmatched"' in text
        assert "/no/such/path/123" not in text


def test_undecodable_bodies_say_why_and_405_lists_every_method_of_the_path(tmp_path) -> None:
    settings = IngestSettings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                              auth=AuthSettings(tokens=[TokenSpec(name="t", token="tok", scopes=["ingest"])]))
    settings.database.url = f"sqlite:///{tmp_path / 'ingest.db'}"
    app = create_app(settings)
    auth = {"Authorization": "Bearer tok", "content-type": "application/json"}
    with TestClient(app) as client:
        eventually(lambda: app.state.database.initialized.is_set(), timeout=10)
        cases = {b'{"posts": "\xff"}': "not valid UTF-8 (byte 11: invalid start byte)",
                 b"[" * 100_000 + b"]" * 100_000: "JSON nested too deeply",
                 b'{"posts": 1' + b"0" * 5000 + b"}": "a JSON number has too many digits",
                 b'{"posts": [}': "not valid JSON at character 11: Expecting value"}
        for body, reason in cases.items():
            response = client.post("/v1/posts", content=body, headers=auth)
            assert response.status_code == 422
            assert response.json()["fields"] == [{"field": "body", "message": reason}]

        # GET and DELETE share /v1/members/{member_id} nowhere in ingest, so add a second method to one path.
        @app.get("/v1/members/{member_id}")
        async def probe(member_id: str) -> dict[str, str]:
            return {}

        assert client.get("/v1/posts").headers["allow"] == "POST"
        assert client.put("/v1/members/x").headers["allow"] == "DELETE, GET"
