import multiprocessing
import os
import types
from concurrent.futures import ProcessPoolExecutor

from recognition import watch
from recognition.config import AlertSettings


def _niceness() -> int:
    return os.nice(0)


def test_the_snapshot_worker_yields_the_cpu_to_the_serving_process() -> None:
    increment = AlertSettings().worker_niceness
    assert increment > 0
    mine = os.nice(0)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=watch._init_worker, initargs=(os.getpid(), increment)) as pool:
        assert pool.submit(_niceness).result(timeout=60) == min(19, mine + increment)
    assert os.nice(0) == mine  # the serving process keeps its priority


def test_a_worker_that_may_not_lower_its_priority_still_starts(monkeypatch, caplog) -> None:
    def forbidden(increment: int) -> int:
        raise PermissionError("nice forbidden here")

    monkeypatch.setattr(os, "nice", forbidden)
    # No parent-watch thread in the test process (a stand-in module, not a patched global), and a parent id that
    # is pytest's own parent, so even a real watch thread would never exit the test run.
    monkeypatch.setattr(watch, "threading", types.SimpleNamespace(
        Thread=lambda **kwargs: types.SimpleNamespace(start=lambda: None)))
    with caplog.at_level("WARNING", logger=watch.log.name):
        watch._init_worker(os.getppid(), 10)
    assert "os.nice failed" in caplog.text
