"""Structured (JSON lines) logging. Post content and member ids are never logged at INFO or above."""

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class Throttle(logging.Filter):
    """Lets one record per logger, level and message template through per `window_s` for loggers under `prefix`;
    the next one let through carries `suppressed`, the number held back meanwhile. aiokafka logs an ERROR for
    every failed connection attempt, dozens a second while a broker is down, which buries everything else."""

    def __init__(self, prefix: str = "aiokafka", window_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefix = prefix
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.suppressed = last[1]
        if len(self._seen) > 1000:  # templates are few; this only bounds a pathological case
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True


def configure(service: str, level: str = "INFO", json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Throttle())
    handler.setFormatter(JsonFormatter(service) if json else logging.Formatter(
        f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty about reconnects at INFO; warnings still come through.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("uvicorn.access").disabled = True
