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


def test_long_computes_stretch_the_period_so_the_snapshot_takes_at_most_its_share_of_the_time() -> None:
    from datetime import UTC, datetime, timedelta

    from recognition.config import RecognitionSettings

    settings = RecognitionSettings.model_validate({"alerts": {"refresh_seconds": 30, "max_busy_share": 0.1}})
    watcher = watch.Watcher(engine=None, producer=None, settings=settings)  # type: ignore[arg-type]
    watcher.compute_seconds = 0.5  # a small community: the configured period
    assert watcher.period() == 30
    watcher.compute_seconds = 26.0  # 1M posts: 26 s of compute, then 234 s of rest
    assert abs(watcher.period() - 234.0) < 1e-9
    assert watcher.compute_seconds / (watcher.compute_seconds + watcher.period()) <= 0.1 + 1e-9
    # The snapshot still stands for "now" for as long as the next one can take to arrive, and not forever.
    now = datetime.now(UTC)
    watcher.latest = types.SimpleNamespace(as_of=now - timedelta(seconds=400))  # type: ignore[assignment]
    assert watcher.fresh(now) is watcher.latest
    watcher.latest = types.SimpleNamespace(as_of=now - timedelta(seconds=600))  # type: ignore[assignment]
    assert watcher.fresh(now) is None
