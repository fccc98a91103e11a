"""A lean keep-alive HTTP/1.1 client for the read benchmarks' simulated clients.

httpx spent about 3 ms of CPU per request here: at 20 closed-loop clients it took a whole core and its own
queueing became most of the latency it reported (health answered in under 1 ms server-side, and the client
saw a p50 of 18 ms). This one does what the benchmarks need and no more: one connection per simulated
client, GET with fixed headers, a Content-Length or chunked body read in full, a reconnect when the server
closes the connection. Latency is still measured from before the request is written to after its last byte
is read.
"""

import asyncio
from urllib.parse import urlsplit


class ClosedError(ConnectionError):
    """The server closed the connection before the whole answer was read."""


class Connection:
    def __init__(self, base: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        lines = [f"Host: {self.host}:{self.port}", *(f"{k}: {v}" for k, v in headers.items())]
        self._headers = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Requests sent twice because a kept-alive connection turned out closed: the benchmarks report them
        # beside the errors, since the retry's latency is counted but the drop would otherwise go unseen.
        self.retried = 0

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body). Retries once on a fresh connection when a kept-alive one turns out closed."""
        for attempt in (0, 1):
            if self._writer is None:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout)
            try:
                return await asyncio.wait_for(self._exchange(path), self.timeout)
            except (ClosedError, ConnectionResetError, BrokenPipeError):
                await self.close()
                if attempt:
                    raise
                self.retried += 1
            except BaseException:
                await self.close()
                raise
        raise AssertionError("unreachable")

    async def _exchange(self, path: str) -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None
        self._writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self._headers)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise ClosedError("closed before the status line") from exc
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        try:
            if fields.get("transfer-encoding", "").lower() == "chunked":
                body = bytearray()
                while True:
                    size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    chunk = await self._reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
                data = bytes(body)
            else:
                data = await self._reader.readexactly(int(fields.get("content-length", "0")))
        except asyncio.IncompleteReadError as exc:
            raise ClosedError("closed in the middle of the body") from exc
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
