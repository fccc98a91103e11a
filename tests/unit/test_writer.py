import asyncio
import multiprocessing
import os
import pickle
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import select

from recognition import models, writing
from recognition.config import RecognitionSettings
from shared import db, kafka, topics
from tests.recognition_timeline import Timeline, days_ago


def _settings(tmp_path: Path, *, process: bool = True) -> RecognitionSettings:
    return RecognitionSettings.model_validate({"database": {"url": f"sqlite:///{tmp_path / 'r.db'}"},
                                               "writer": {"process": process}})


def _items(t: Timeline) -> list[tuple[str, bytes | None]]:
    items: list[tuple[str, bytes | None]] = [(topics.CLASSIFIED, e.model_dump_json().encode()) for e in t.events]
    items += [(topics.REACTIONS, r.model_dump_json().encode()) for r in t.reactions]
    return items


def test_a_failure_classified_in_another_process_keeps_its_kind_across_the_pipe() -> None:
    failure = pickle.loads(pickle.dumps(kafka.HandlerFailure(kafka.Failure.TRANSIENT, "database is locked")))
    assert kafka.classify(failure) is kafka.Failure.TRANSIENT
    assert kafka.decide(failure, 1000, max_attempts=3) is kafka.Action.RETRY
    unknown = kafka.HandlerFailure(kafka.Failure.UNKNOWN, "bug")
    assert kafka.decide(unknown, 3, max_attempts=3) is kafka.Action.DEAD_LETTER


@pytest.mark.parametrize("process", [True, False], ids=["process", "thread"])
def test_the_writer_stores_a_batch_and_returns_poison_by_index(tmp_path: Path, process: bool) -> None:
    settings = _settings(tmp_path, process=process)
    engine = db.make_engine(settings.database.url)
    db.create_schema(engine, models.SQLModel.metadata)
    t = Timeline(None, "w")
    asker = t.post(t.member("newbie"), ["newcomer_question"], at=days_ago(2))
    answer = t.post(t.member("mentor"), ["newcomer_answer"], at=days_ago(1), reply_to=asker,
                    thread=t.thread_of(asker))
    t.reaction(answer, t.member("newbie"), "thanks", at=days_ago(1))
    items = _items(t)
    items.insert(1, (topics.CLASSIFIED, b"{not json"))
    items.append(("koc.unexpected.v1", b"{}"))
    writer = writing.Writer(engine=engine, settings=settings)
    try:
        written = asyncio.run(writer.apply(items))
        again = asyncio.run(writer.apply(items))  # redelivered: stored once
    finally:
        writer.close()
    assert [i for i, _ in written.poison] == [1, 4]
    assert "invalid ClassifiedPostEvent" in written.poison[0][1] and "unexpected topic" in written.poison[1][1]
    assert sorted(written.stored) == sorted([asker, answer]) and written.reactions == 1
    assert len(written.latencies) == 2
    assert again.stored == [] and again.reactions == 0
    with db.unit_of_work(engine) as session:
        assert len(session.exec(select(models.StoredPost.post_id)).all()) == 2


def test_a_database_outage_in_the_writer_process_is_transient(tmp_path: Path) -> None:
    settings = _settings(tmp_path)  # the schema was never created: SQLite says "no such table"
    t = Timeline(None, "o")
    t.post(t.member("a"), ["venting"], at=days_ago(1))
    writer = writing.Writer(engine=db.make_engine(settings.database.url), settings=settings)
    try:
        with pytest.raises(kafka.HandlerFailure) as failure:
            asyncio.run(writer.apply(_items(t)))
    finally:
        writer.close()
    assert kafka.classify(failure.value) is kafka.Failure.TRANSIENT
    assert "no such table" in failure.value.message


def test_a_killed_writer_is_replaced_and_the_batch_retried_in_the_new_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    engine = db.make_engine(settings.database.url)
    db.create_schema(engine, models.SQLModel.metadata)
    t = Timeline(None, "k")
    first = t.post(t.member("a"), ["welcome"], at=days_ago(1))
    writer = writing.Writer(engine=engine, settings=settings)

    async def scenario() -> None:
        assert (await writer.apply(_items(t))).stored == [first]
        assert writer._pool is not None
        (pid,) = writer._pool._processes  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)  # between batches, as the OOM killer would
        await asyncio.sleep(0.5)
        second = t.post(t.member("b"), ["welcome"], at=days_ago(1))
        written = await writer.apply(_items(t))  # the redelivered first post and a new one
        assert written.stored == [second]
        assert writer._pool is not None and pid not in writer._pool._processes  # type: ignore[attr-defined]

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    with pytest.raises(kafka.HandlerFailure) as closed:
        asyncio.run(writer.apply(_items(t)))
    assert closed.value.kind is kafka.Failure.TRANSIENT


def _die() -> None:
    os._exit(3)


class _DyingWriter(writing.Writer):
    """A writer whose every process dies before it can write: what a batch that kills the writer looks like."""

    def _start(self) -> ProcessPoolExecutor:
        self.started += 1
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_die)


def test_a_writer_that_dies_twice_on_a_batch_is_an_unknown_failure(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    t = Timeline(None, "d")
    t.post(t.member("a"), ["welcome"], at=days_ago(1))
    writer = _DyingWriter(engine=db.make_engine(settings.database.url), settings=settings)
    writer.started = 0  # type: ignore[attr-defined]
    try:
        with pytest.raises(kafka.HandlerFailure) as failure:
            asyncio.run(writer.apply(_items(t)))
    finally:
        writer.close()
    assert failure.value.kind is kafka.Failure.UNKNOWN
    assert writer.started == 2  # type: ignore[attr-defined]


def _niceness() -> int:
    return os.nice(0)


def test_the_writer_process_runs_at_its_configured_niceness(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.writer.niceness == 0  # the default: the writer is on the pipeline's path
    settings = settings.model_copy(update={"writer": settings.writer.model_copy(update={"niceness": 10})})
    writer = writing.Writer(engine=db.make_engine(settings.database.url), settings=settings)
    mine = os.nice(0)
    try:
        pool = writer._pool = writer._start()
        assert pool.submit(_niceness).result(timeout=60) == min(19, mine + 10)
    finally:
        writer.close()
    assert os.nice(0) == mine
