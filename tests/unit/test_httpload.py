"""The benchmarks' lean HTTP client reads whole answers, in both body framings, and survives closed connections."""

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


def _httpload() -> ModuleType:
    spec = importlib.util.spec_from_file_location("httpload", Path(__file__).parents[2] / "bench" / "httpload.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _server(seen: list[bytes]) -> asyncio.Server:
    """Answers /length with a Content-Length body, /chunked chunked, /close and then closes, /drop by closing
    without an answer (a kept-alive connection the server has dropped)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(head)
                path = head.split(b" ")[1]
                if path == b"/length":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                elif path == b"/chunked":
                    writer.write(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n")
                elif path == b"/close":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    await writer.drain()
                    break
                else:
                    break
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_answers_are_read_whole_and_connections_are_reused_or_reopened() -> None:
    httpload = _httpload()

    async def main() -> None:
        seen: list[bytes] = []
        server = await _server(seen)
        port = server.sockets[0].getsockname()[1]
        conn = httpload.Connection(f"http://127.0.0.1:{port}", {"Authorization": "Bearer t"}, timeout=5)
        try:
            assert await conn.get("/length") == (200, b"hello")
            assert await conn.get("/chunked") == (404, b"abcdefg")
            assert await conn.get("/close") == (200, b"ok")
            assert await conn.get("/length") == (200, b"hello")  # on a new connection
            with pytest.raises(httpload.ClosedError):  # dropped on the kept-alive one and again on a fresh one
                await conn.get("/drop")
            assert await conn.get("/length") == (200, b"hello")
            assert conn.retried == 1  # only the drop was sent again; a `Connection: close` is not a retry
        finally:
            await conn.close()
            server.close()
            await server.wait_closed()
        assert all(b"Authorization: Bearer t\r\n" in h and h.startswith(b"GET /") for h in seen)
        assert [h.split(b" ")[1] for h in seen] == [b"/length", b"/chunked", b"/close", b"/length", b"/drop",
                                                    b"/drop", b"/length"]

    asyncio.run(main())
