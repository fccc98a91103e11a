"""`make run`'s launcher as a user meets it: starts everything, replays the demo, prints where to look,
stops cleanly on SIGTERM, and refuses to start on a taken port."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from devstack import demo, processes

NAMES = {"broker": "ANCHOR_KAFKA_PORT", "ingest": "ANCHOR_INGEST_PORT", "classifier": "ANCHOR_CLASSIFIER_PORT",
         "recognition": "ANCHOR_RECOGNITION_PORT"}


def _env(tmp: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    env = {**os.environ, "ANCHOR_DATA_DIR": str(tmp / "data"), **extra}
    env.update({var: str(ports[name]) for name, var in NAMES.items()})
    return env


def _lines(proc: subprocess.Popen[str]) -> "queue.Queue[str]":
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _read_until(lines: "queue.Queue[str]", marker: str, timeout: float) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed within {timeout}s:\n" + "".join(seen))


def test_run_replays_the_demo_prints_where_to_look_and_stops_on_sigterm(tmp_path: Path) -> None:
    ports = {name: processes.free_port() for name in NAMES}
    proc = subprocess.Popen([sys.executable, "-m", "devstack.cli", "run"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(tmp_path, ports, ANCHOR_API_TOKEN="demo-token-123"))
    try:
        output = _read_until(_lines(proc), "Ctrl-C", timeout=180)
        assert "430/430 posts visible in recognition" in output
        assert "demo-token-123" in output
        assert f"http://127.0.0.1:{ports['recognition']}" in output
        member = httpx.get(f"http://127.0.0.1:{ports['recognition']}/v1/members/d-u001",
                           headers={"Authorization": "Bearer demo-token-123"})
        assert member.status_code == 200 and member.json()["posts"] > 10
        # Every recognition view the guide points at answers on the demo.
        for _, path in demo.story_paths(demo.STORY_AS_OF.replace("+", "%2B")):
            assert path in output
            view = httpx.get(f"http://127.0.0.1:{ports['recognition']}{path}",
                             headers={"Authorization": "Bearer demo-token-123"})
            assert view.status_code == 200, (path, view.text)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    for name, port in ports.items():
        assert not processes.port_in_use(port), f"{name} still listening after stop"
    assert (tmp_path / "data" / "recognition.db").exists()


def test_run_refuses_to_start_when_a_port_is_taken(tmp_path: Path) -> None:
    ports = {name: processes.free_port() for name in NAMES}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["ingest"]))
        holder.listen()
        result = subprocess.run([sys.executable, "-m", "devstack.cli", "run"], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60,
                                env=_env(tmp_path, ports, ANCHOR_DEMO="0"))
    assert result.returncode == 1
    assert f"port already in use: ingest ({ports['ingest']})" in result.stdout
