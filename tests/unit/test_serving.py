"""The services run on uvicorn's fast paths: a C HTTP parser and a libuv event loop, not the pure-Python fallbacks."""

from fastapi import FastAPI
from uvicorn.config import Config

from shared import app


def test_serve_runs_on_httptools_and_uvloop() -> None:
    config = Config(FastAPI(), **app.UVICORN_OPTIONS)
    config.load()
    # Installed with the schema package; were either missing, uvicorn would quietly fall back to h11 and asyncio's
    # own loop, at half the requests per second.
    assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"
    assert config.get_loop_factory().__module__.startswith("uvloop")
