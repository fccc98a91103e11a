"""Where a request's read runs: short bounded reads on the event loop on SQLite, everything else in a thread."""

import asyncio
import threading

import pytest

from recognition import reads
from recognition.config import RecognitionSettings


@pytest.mark.parametrize(("setting", "dialect", "expected"), [
    (None, "sqlite", True),  # the process's own CPU work: no lock handoff
    (None, "postgresql", False),  # a round trip per statement would hold the loop
    (True, "postgresql", True),
    (False, "sqlite", False),
])
def test_where_bounded_reads_run_by_default_and_when_configured(setting: bool | None, dialect: str,
                                                                  expected: bool) -> None:
    assert reads.on_loop(setting, dialect=dialect) is expected


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RecognitionSettings().reads.on_loop is None
    monkeypatch.setenv("RECOGNITION_READS__ON_LOOP", "false")
    assert RecognitionSettings().reads.on_loop is False


@pytest.mark.parametrize(("on_loop", "bounded", "in_loop_thread"), [
    (True, True, True),
    (True, False, False),  # a list or a window: never on the loop
    (False, True, False),
    (False, False, False),
])
def test_a_read_runs_on_the_loop_only_if_bounded_and_the_service_reads_there(on_loop: bool, bounded: bool,
                                                                              in_loop_thread: bool) -> None:
    async def main() -> tuple[int, int]:
        ran = await reads.run(threading.get_ident, on_loop=on_loop, bounded=bounded)
        return ran, threading.get_ident()

    ran, loop_thread = asyncio.run(main())
    assert (ran == loop_thread) is in_loop_thread


def test_an_error_in_a_read_reaches_the_caller_wherever_it_ran() -> None:
    def fails() -> None:
        raise LookupError("no such member")

    for on_loop in (True, False):
        with pytest.raises(LookupError, match="no such member"):
            asyncio.run(reads.run(fails, on_loop=on_loop, bounded=True))
