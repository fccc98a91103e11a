"""Fixtures that start real parts: the Tansu broker, PostgreSQL (when its binaries exist) and the services."""

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from devstack import postgres, processes
from devstack.stack import Stack
from shared import db

READER_TOKEN = "reader-" + secrets.token_hex(8)
BACKENDS = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster | None]:
    bindir = postgres.binaries()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: .ci/run installs it")
        yield None
        return
    cluster = postgres.Cluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def database_urls(backend: str, cluster: postgres.Cluster | None) -> dict[str, str]:
    if backend == "sqlite":
        return {}
    if cluster is None:
        pytest.skip("PostgreSQL binaries not installed")
    return {"ingest": cluster.create_database("ingest"), "recognition": cluster.create_database("recognition")}


def new_stack(tmp: Path, backend: str, cluster: postgres.Cluster | None, **kwargs: object) -> Stack:
    ports = {name: processes.free_port() for name in ("broker", "ingest", "classifier", "recognition")}
    # A fast community snapshot, so list endpoints, gauges and alerts catch up within a second in tests (and not
    # stretched by a loaded test machine's slower computes: see `watch.Watcher.period`).
    extra_env = {"recognition": {"RECOGNITION_ALERTS__REFRESH_SECONDS": "1", "RECOGNITION_ALERTS__MAX_BUSY_SHARE": "1"}}
    for name, env in dict(kwargs.pop("extra_env", {}) or {}).items():  # type: ignore[call-overload]
        extra_env[name] = {**extra_env.get(name, {}), **env}
    extra_tokens = [{"name": "reader", "token": READER_TOKEN, "scopes": ["read"]},
                    *list(kwargs.pop("extra_tokens", []) or [])]  # type: ignore[call-overload]
    return Stack(extra_env=extra_env, data_dir=tmp, token=secrets.token_urlsafe(16), ports=ports,
                 database_urls=database_urls(backend, cluster), extra_tokens=extra_tokens, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          pg_cluster: postgres.Cluster | None) -> Iterator[Stack]:
    """A shared stack per database backend. Tests on it use their own ids and must leave it running."""
    s = new_stack(tmp_path_factory.mktemp(f"stack-{request.param}"), request.param, pg_cluster)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           pg_cluster: postgres.Cluster | None) -> Iterator[Engine]:
    """Recognition's schema in a fresh database of each backend, for tests that drive its write path directly."""
    from recognition import models

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('rec') / 'recognition.db'}"
    else:
        if pg_cluster is None:
            pytest.skip("PostgreSQL binaries not installed")
        url = pg_cluster.create_database("rec")
    eng = db.make_engine(url)
    db.create_schema(eng, models.SQLModel.metadata)
    yield eng
    eng.dispose()
