"""Access control on every route of every service, token rotation, and ingest's per-token rate limit.

The route table comes from each service's own `create_app()`: the scope a route needs is read from its dependency
tree (`shared.auth.require` marks each check with its scope), so a route added without auth shows up here as
unprotected and fails the test unless it is on the small public list. The running services are then probed: every
protected route answers 401 without a token and with an unknown one, 403 to a token holding every scope but its own,
and lets a token holding only its scope through.

Auth and rate limiting never touch the database, so this module runs on one stack (SQLite) of its own, with a token
per scope, a low rate limit on ingest, and restarts of ingest with new token lists.
"""

import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from devstack.stack import Stack
from shared import auth, errors
from shared.settings import SCOPES
from tests.conftest import new_stack
from tests.helpers import post, uid

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "spec" / "api.md"
SERVICES = ("ingest", "classifier", "recognition")

# Everything a caller may reach without a token: probes, metrics, and the API's own description. Nothing else.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                          "/redoc"})
PUBLIC_METHODS = frozenset({"GET", "HEAD"})

# Tokens of the module's stack: for each scope, one holding only it and one holding every other scope.
ONLY = {scope: f"only-{scope}-" + secrets.token_hex(8) for scope in SCOPES}
ALL_BUT = {scope: f"all-but-{scope}-" + secrets.token_hex(8) for scope in SCOPES}
LIMITED = {name: f"{name}-" + secrets.token_hex(8) for name in ("limited", "limited-big", "limited-reactions")}
RATE, BURST = 5, 20  # records per second, and the bucket, on the module's ingest
# One principal mid-rotation: its old token in plain, its new one as a digest only.
ROTATION_OLD, ROTATION_NEW = "old-" + secrets.token_urlsafe(16), "new-" + secrets.token_urlsafe(16)
ROTATION_DIGEST = hashlib.sha256(ROTATION_NEW.encode()).hexdigest()


def base_tokens() -> list[dict[str, object]]:
    tokens: list[dict[str, object]] = []
    for scope in SCOPES:
        tokens.append({"name": f"only-{scope}", "token": ONLY[scope], "scopes": [scope]})
        tokens.append({"name": f"all-but-{scope}", "token": ALL_BUT[scope],
                       "scopes": [s for s in SCOPES if s != scope]})
    tokens += [{"name": name, "token": token, "scopes": ["ingest"]} for name, token in LIMITED.items()]
    tokens += [{"name": "brand-backend", "token": ROTATION_OLD, "scopes": ["ingest"]},
               {"name": "brand-backend", "sha256": ROTATION_DIGEST, "scopes": ["ingest"]}]
    return tokens


@pytest.fixture(scope="module")
def access_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("access"), "sqlite", None, extra_tokens=base_tokens(),
                  extra_env={"ingest": {"INGEST_RATE_LIMIT__RECORDS_PER_SECOND": str(RATE),
                                        "INGEST_RATE_LIMIT__BURST": str(BURST)}})
    s.start()
    try:
        yield s
    finally:
        s.stop()


# --- the route table -------------------------------------------------------------------------------------------


def build_app(service: str) -> FastAPI:
    """The service's app as it is served, without running its lifespan (no connection is opened)."""
    if service == "ingest":
        from ingest.app import create_app as ingest_app
        from ingest.config import IngestSettings

        return ingest_app(IngestSettings())
    if service == "classifier":
        from classifier.app import create_app as classifier_app
        from classifier.config import ClassifierSettings

        return classifier_app(ClassifierSettings())
    from recognition.app import create_app as recognition_app
    from recognition.config import RecognitionSettings

    return recognition_app(RecognitionSettings())


def route_table(app: FastAPI) -> dict[tuple[str, str], set[str] | None]:
    """(method, path) -> the scopes its dependencies require; None for a route whose protection cannot be read
    (a plain Starlette route, a mount), which counts as unprotected."""
    table: dict[tuple[str, str], set[str] | None] = {}
    for route in errors.routes(app):
        dependant = getattr(route, "dependant", None)
        scopes = auth.required_scopes(dependant) if dependant is not None else None
        for method in getattr(route, "methods", None) or {"*"}:
            table[(method, getattr(route, "path", None) or repr(route))] = scopes
    return table


def unprotected(app: FastAPI) -> list[tuple[str, str]]:
    """Routes outside the public list that require no scope (or not exactly one)."""
    return sorted(key for key, scopes in route_table(app).items()
                  if not (key[0] in PUBLIC_METHODS and key[1] in PUBLIC_PATHS) and (not scopes or len(scopes) != 1))


def protected(app: FastAPI) -> dict[tuple[str, str], str]:
    return {key: next(iter(scopes)) for key, scopes in route_table(app).items()
            if scopes and not (key[0] in PUBLIC_METHODS and key[1] in PUBLIC_PATHS)}


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_is_public_by_name_or_needs_exactly_one_scope(service: str) -> None:
    app = build_app(service)
    assert unprotected(app) == []
    public = {path for (_, path), scopes in route_table(app).items() if path in PUBLIC_PATHS}
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json"} <= public
    assert all(path.startswith("/v1/") for _, path in protected(app)), "every protected route is under /v1"
    for (method, path), scopes in route_table(app).items():
        if path in PUBLIC_PATHS:
            assert method in PUBLIC_METHODS and not scopes, (method, path)


def test_a_route_added_without_auth_is_caught() -> None:
    from ingest.config import IngestSettings
    from shared import app as base

    app = base.build(service="probe", title="probe", description="", settings=IngestSettings(), lifespan=_idle)

    @app.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    @app.post("/healthz")
    async def public_path_new_method() -> dict[str, str]:
        return {}

    @app.get("/v1/guarded", dependencies=[Depends(auth.require("read"))])
    async def guarded() -> dict[str, str]:
        return {}

    assert unprotected(app) == [("GET", "/v1/forgotten"), ("POST", "/healthz")]
    assert protected(app)[("GET", "/v1/guarded")] == "read"


@asynccontextmanager
async def _idle(_: FastAPI) -> AsyncIterator[None]:
    yield


# --- the scopes the contract names ------------------------------------------------------------------------------


def _path(text: str) -> str:
    return text.split("?")[0]


def api_md_scopes() -> dict[tuple[str, str, str], str]:
    """Routes api.md names with their scope: recognition lists `(scope)` after each endpoint; ingest's scopes are
    in the Auth section ("`ingest` (write posts, reactions)", "`admin` (audit log, opt-outs, deletion)")."""
    if not SPEC.exists():
        pytest.skip("../shared/spec is not beside this checkout")
    text = SPEC.read_text(encoding="utf-8")
    assert "`ingest` (write posts, reactions)" in text and "`admin` (audit log, opt-outs, deletion)" in text
    named = {("recognition", m, _path(p)): scope for m, p, scope in re.findall(
        r"^- `(GET|POST|PUT|DELETE|PATCH) (/v1/\S+?)`[^(\n]*\((\w+)\)", text, flags=re.MULTILINE)}
    assert set(named.values()) <= set(SCOPES), named
    named |= {("ingest", "POST", "/v1/posts"): "ingest", ("ingest", "POST", "/v1/reactions"): "ingest",
              ("ingest", "DELETE", "/v1/members/{member_id}"): "admin"}
    return named


def readme_scopes() -> dict[tuple[str, str, str], str]:
    """The README's "API at a glance" table: service, endpoint and scope of every /v1 route."""
    rows: dict[tuple[str, str, str], str] = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        if len(cells) != 5 or not re.fullmatch(r"(ingest|classifier|recognition) :\d+", cells[1]):
            continue
        endpoint = re.match(r"`(GET|POST|PUT|DELETE|PATCH) (/v1/[^`\s]+)", cells[2])
        assert endpoint, line
        rows[(cells[1].split()[0], endpoint.group(1), _path(endpoint.group(2)))] = cells[3]
    return rows


def test_each_route_needs_the_scope_the_contract_and_the_readme_name() -> None:
    derived = {(service, method, path): scope for service in SERVICES
               for (method, path), scope in protected(build_app(service)).items()}
    named = api_md_scopes()
    assert {k: derived.get(k) for k in named} == named, "a route's scope differs from api.md"
    # Recognition's endpoints in api.md are all served (ingest's and the classifier's are listed without scopes).
    assert {k for k in named if k[0] == "recognition"} <= set(derived)
    assert readme_scopes() == derived, "README's API table must list every /v1 route with the scope it needs"


# --- the running services ---------------------------------------------------------------------------------------


def _request(client: httpx.Client, base: str, method: str, path: str, token: str | None) -> httpx.Response:
    url = base + re.sub(r"\{[^}]+\}", lambda _: uid("x"), path)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, url, headers=headers, json=body)


@pytest.mark.parametrize("service", SERVICES)
def test_every_protected_route_of_the_running_service_refuses_and_admits_by_scope(access_stack: Stack,
                                                                                  service: str) -> None:
    routes = protected(build_app(service))
    base = access_stack.url(service)
    with httpx.Client(timeout=30) as client:
        served = client.get(f"{base}/openapi.json").json()["paths"]
        in_schema = {(m.upper(), p) for p, ops in served.items() for m in ops}
        assert {k for k in routes} == {k for k in in_schema if k[1] not in PUBLIC_PATHS}, \
            "the running service serves the routes its create_app() builds"
        for (method, path), scope in sorted(routes.items()):
            where = f"{service} {method} {path}"
            for token in (None, "not-a-token", ONLY[scope] + "x", hashlib.sha256(ONLY[scope].encode()).hexdigest()):
                response = _request(client, base, method, path, token)
                assert response.status_code == 401, (where, token, response.text)
                assert response.headers["www-authenticate"] == "Bearer", where
                assert response.json()["error"] == "unauthorized", where
            denied = _request(client, base, method, path, ALL_BUT[scope])
            assert denied.status_code == 403, (where, denied.text)
            assert denied.json()["error"] == "forbidden" and scope in denied.json()["message"], where
            admitted = _request(client, base, method, path, ONLY[scope])
            assert admitted.status_code not in (401, 403), (where, admitted.text)
            assert admitted.status_code < 500, (where, admitted.text)
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            assert client.get(f"{base}{path}").status_code == 200, (service, path)


def _posts(n: int, thread: str | None = None) -> dict[str, list[dict[str, Any]]]:
    thread = thread or uid("t")
    return {"posts": [post(uid("p"), thread_id=thread, author_id=uid("u"), content="限速测试") for _ in range(n)]}


def test_ingest_rate_limit_per_token_counts_records_and_answers_429_with_retry_after(access_stack: Stack) -> None:
    ingest = access_stack.url("ingest")
    spec = httpx.get(f"{ingest}/openapi.json").json()
    for route in ("/v1/posts", "/v1/reactions"):
        documented = spec["paths"][route]["post"]["responses"]["429"]
        assert documented["headers"]["Retry-After"]["required"] is True, route

    limited = httpx.Client(headers={"Authorization": f"Bearer {LIMITED['limited']}"}, timeout=30)
    with limited:
        first = limited.post(f"{ingest}/v1/posts", json=_posts(BURST))
        assert first.status_code == 202 and first.json() == {"accepted": BURST, "duplicates": 0}
        refused_body = _posts(5)
        refused = limited.post(f"{ingest}/v1/posts", json=refused_body)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] in ("1", "2")  # 5 records at 5/s, rounded up
        assert refused.headers["content-type"].startswith("application/json")
        body = refused.json()
        assert body["error"] == "rate_limited" and "limited" in body["message"] and body["fields"] == []

        # Another token has a bucket of its own.
        other = httpx.post(f"{ingest}/v1/posts", json=_posts(3),
                           headers={"Authorization": f"Bearer {access_stack.token}"}, timeout=30)
        assert other.status_code == 202, other.text

        # A refused request stored nothing: sent again after Retry-After, all of it is new.
        time.sleep(int(refused.headers["retry-after"]))
        again = limited.post(f"{ingest}/v1/posts", json=refused_body)
        assert again.status_code == 202 and again.json() == {"accepted": 5, "duplicates": 0}, again.text

    metrics = httpx.get(f"{ingest}/metrics").text
    counted = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("anchor_ingest_rate_limited_total{") and 'token="limited"' in line
               and 'kind="post"' in line]
    assert counted and counted[0] >= 1, metrics[-2000:]
    assert LIMITED["limited"] not in metrics


def test_a_batch_larger_than_the_burst_passes_on_a_full_bucket_then_waits_for_its_debt(access_stack: Stack) -> None:
    ingest = access_stack.url("ingest")
    with httpx.Client(headers={"Authorization": f"Bearer {LIMITED['limited-big']}"}, timeout=30) as c:
        big = c.post(f"{ingest}/v1/posts", json=_posts(100))
        assert big.status_code == 202 and big.json()["accepted"] == 100
        after = c.post(f"{ingest}/v1/posts", json=_posts(1))
        assert after.status_code == 429
        # 80 records of debt plus this one at 5/s: about 16.2 s, rounded up.
        assert 16 <= int(after.headers["retry-after"]) <= 17, after.headers["retry-after"]


def test_reactions_count_against_the_same_bucket(access_stack: Stack) -> None:
    ingest = access_stack.url("ingest")
    reactions = {"reactions": [{"reaction_id": uid("r"), "post_id": uid("p"), "from_author_id": uid("u"),
                                "kind": "like", "created_at": "2026-03-01T21:00:00+08:00"} for _ in range(BURST)]}
    with httpx.Client(headers={"Authorization": f"Bearer {LIMITED['limited-reactions']}"}, timeout=30) as c:
        assert c.post(f"{ingest}/v1/reactions", json=reactions).status_code == 202
        refused = c.post(f"{ingest}/v1/posts", json=_posts(1))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_rotation_two_tokens_of_one_principal_then_only_the_new_one(access_stack: Stack) -> None:
    """Rotation as docs/deploy-*.md describe it. The stack started with two tokens for `brand-backend`: the old one
    (plain) and the new one (stored only as its SHA-256 digest); both work. The old one is then removed from the
    configuration: the restarted service refuses it and the new one keeps working."""
    ingest = access_stack.url("ingest")

    def send(token: str) -> int:
        return httpx.post(f"{ingest}/v1/posts", json=_posts(1), headers={"Authorization": f"Bearer {token}"},
                          timeout=30).status_code

    assert send(ROTATION_OLD) == 202
    assert send(ROTATION_NEW) == 202
    assert send(ROTATION_DIGEST) == 401  # the stored digest is not itself a token

    access_stack.children.pop("ingest").stop()
    access_stack.extra_tokens = [t for t in access_stack.extra_tokens if t.get("token") != ROTATION_OLD]
    access_stack.start_service("ingest")
    assert send(ROTATION_OLD) == 401
    assert send(ROTATION_NEW) == 202
    log = (access_stack.data_dir / "logs" / "ingest.log").read_text(errors="replace")
    assert ROTATION_OLD not in log and ROTATION_NEW not in log
