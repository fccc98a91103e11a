"""Lowering a process's CPU priority, for background work that shares cores with request handling."""

import logging
import os


def lower(increment: int, log: logging.Logger, who: str) -> None:
    """Adds `increment` (0-19) to this process's nice value. A platform or sandbox that forbids it is logged and
    otherwise ignored: the process still works, at equal priority."""
    if increment <= 0:
        return
    try:
        os.nice(increment)
    except OSError as error:
        log.warning("%s keeps its priority: os.nice failed (%s)", who, error)
