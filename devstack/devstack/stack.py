"""The whole local stack: broker, topics and the three services, started in order and stopped in reverse."""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from devstack import processes
from devstack.processes import Child, StackError
from shared import kafka
from shared.settings import SCOPES

DEFAULT_PORTS = {"broker": 9092, "ingest": 8001, "classifier": 8002, "recognition": 8003}


@dataclass
class Stack:
    data_dir: Path
    token: str
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    # Per-service database URLs; SQLite files under data_dir when not given.
    database_urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    extra_tokens: list[dict[str, object]] = field(default_factory=list)
    children: dict[str, Child] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def tokens(self) -> list[dict[str, object]]:
        return [{"name": "dev", "token": self.token, "scopes": list(SCOPES)}, *self.extra_tokens]

    def check_ports(self) -> None:
        taken = [f"{name} ({port})" for name, port in self.ports.items() if processes.port_in_use(port)]
        if taken:
            raise StackError("port already in use: " + ", ".join(taken)
                             + ". Stop whatever holds it, or set ANCHOR_*_PORT to other ports.")

    def start(self, *, timeout: float = 60.0) -> None:
        self.check_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_broker(timeout=timeout)
            for name in processes.SERVICES:
                self.start_service(name, timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def start_broker(self, *, timeout: float = 30.0, create_topics: bool = True) -> None:
        child = processes.broker(self.ports["broker"], self.data_dir / "logs" / "broker.log")
        child.start()
        self.children["broker"] = child
        processes.wait_for_port(self.ports["broker"], timeout=timeout, proc=child.proc)
        if create_topics:
            asyncio.run(kafka.ensure_topics(self.bootstrap))

    def stop_broker(self) -> None:
        """Stops the broker; with the embedded broker's memory storage every topic and offset goes with it."""
        child = self.children.pop("broker", None)
        if child is not None:
            child.stop()

    def restart_broker(self, *, create_topics: bool = True, timeout: float = 30.0) -> None:
        """Starts the broker again on the same port, empty. Without `create_topics` the topics are left to the
        services, which recreate them when they see them missing (`KafkaSettings.create_topics`)."""
        self.stop_broker()
        self.start_broker(timeout=timeout, create_topics=create_topics)

    def start_service(self, name: str, *, timeout: float = 60.0, wait: bool = True) -> Child:
        database_url = self.database_urls.get(name)
        if database_url is None and name != "classifier":
            database_url = f"sqlite:///{(self.data_dir / f'{name}.db').resolve()}"
        child = processes.service(name, port=self.ports[name], bootstrap=self.bootstrap, tokens=self.tokens(),
                                  database_url=database_url, log_path=self.data_dir / "logs" / f"{name}.log",
                                  extra_env=self.extra_env.get(name))
        child.start()
        self.children[name] = child
        if wait:
            processes.wait_ready(self.url(name), timeout=timeout, proc=child)
        return child

    def stop(self) -> None:
        for name in (*reversed(processes.SERVICES), "broker"):
            child = self.children.pop(name, None)
            if child is not None:
                child.stop()
