"""Reader processes answer a member's view and thank-you draft exactly as the serving process would, each read
gets its own answer when many are in flight, and a reader that dies or hangs costs its reads a 503, never a
wrong answer, and is replaced."""

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from recognition import read_pool, reads, service
from shared import db, errors
from tests.recognition_timeline import AS_OF, Timeline, answer, asked, days_ago

HELPERS = 12


@pytest.fixture(scope="module")
def community(engine: Engine) -> Iterator[tuple[Engine, list[str]]]:
    """Helpers with different histories (helper k answers k + 1 questions), so that a view given to the wrong
    read would show."""
    t = Timeline(engine, "pool")
    helpers = [t.member(f"helper{k}") for k in range(HELPERS)]
    for k, helper in enumerate(helpers):
        for n in range(k + 1):
            question = asked(t, t.member(f"asker{k}-{n}"), at=days_ago(3 + n))
            reply = answer(t, helper, question, at=days_ago(3 + n, hour=14))
            if n % 2:
                t.post(t.member(f"asker{k}-{n}"), ["gratitude"], at=days_ago(3 + n, hour=15),
                       thread=t.thread_of(question), reply_to=reply, content="太感谢了,解决了")
    t.flush()
    yield engine, helpers


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _in_process(engine: Engine, name: str, **kwargs: object) -> bytes:
    work = {"member_view": service.member_view, "thank_you": service.thank_you}[name]
    with db.unit_of_work(engine) as session:
        return work(session=session, **kwargs).model_dump_json().encode()


def _kwargs(name: str, member: str) -> dict[str, object]:
    return {"member_id": member, "as_of": AS_OF, **({"daily_cap": 12} if name == "member_view" else {})}


def test_many_reads_in_flight_each_get_their_own_answer(community: tuple[Engine, list[str]]) -> None:
    engine, helpers = community
    expected = {(name, m): _in_process(engine, name, **_kwargs(name, m))
                for name in ("member_view", "thank_you") for m in helpers}
    assert len(set(expected.values())) == len(expected)  # every answer differs: a mix-up cannot pass

    async def main() -> tuple[list[bytes], int]:
        pool = read_pool.ReadPool(url=_url(engine), size=2, timeout_s=60)
        try:
            keys = list(expected) * 4
            got = await asyncio.gather(*(pool.read(name, **_kwargs(name, m)) for name, m in keys))
            return [got[i] == expected[k] for i, k in enumerate(keys)], len(set(pool.pids))
        finally:
            await pool.close()

    matches, readers = asyncio.run(main())
    assert all(matches) and len(matches) == 4 * 2 * HELPERS
    assert readers == 2


def test_readers_start_in_the_background_before_any_read(community: tuple[Engine, list[str]]) -> None:
    engine, _ = community

    async def main() -> list[int]:
        pool = read_pool.ReadPool(url=_url(engine), size=2, timeout_s=60)
        try:
            pool.start()
            deadline = asyncio.get_running_loop().time() + 30
            while len(pool.pids) < 2 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - polls the processes
                await asyncio.sleep(0.05)
            return pool.pids
        finally:
            await pool.close()

    assert len(set(asyncio.run(main()))) == 2


def test_a_service_error_comes_back_as_the_same_error(community: tuple[Engine, list[str]]) -> None:
    engine, _ = community
    with pytest.raises(errors.AnchorError) as in_process, db.unit_of_work(engine) as session:
        service.member_view(session=session, member_id="pool-nobody", as_of=AS_OF, daily_cap=12)

    async def main() -> errors.AnchorError:
        pool = read_pool.ReadPool(url=_url(engine), size=1, timeout_s=60)
        try:
            with pytest.raises(errors.AnchorError) as raised:
                await pool.read("member_view", member_id="pool-nobody", as_of=AS_OF, daily_cap=12)
            return raised.value
        finally:
            await pool.close()

    error = asyncio.run(main())
    assert (error.status_code, error.code, error.message) == (
        in_process.value.status_code, in_process.value.code, in_process.value.message) and error.status_code == 404


def test_a_killed_reader_fails_its_reads_with_503_and_is_replaced(community: tuple[Engine, list[str]]) -> None:
    engine, helpers = community
    member = helpers[-1]
    expected = _in_process(engine, "member_view", **_kwargs("member_view", member))

    async def main() -> tuple[list[object], bytes, int, int]:
        pool = read_pool.ReadPool(url=_url(engine), size=1, timeout_s=60)
        try:
            await pool.read("member_view", **_kwargs("member_view", member))  # started
            (first,) = pool.pids
            in_flight = [asyncio.ensure_future(pool.read("member_view", **_kwargs("member_view", member)))
                         for _ in range(20)]
            await asyncio.sleep(0)  # sent
            os.kill(first, signal.SIGKILL)
            outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
            after = await pool.read("member_view", **_kwargs("member_view", member))
            (second,) = pool.pids
            return outcomes, after, first, second
        finally:
            await pool.close()

    outcomes, after, first, second = asyncio.run(main())
    failed = [o for o in outcomes if isinstance(o, errors.AnchorError)]
    assert failed, "the kill landed after every read was answered"
    assert all(o.status_code == 503 and o.headers == {"Retry-After": "1"} for o in failed)
    assert all(o == expected for o in outcomes if not isinstance(o, errors.AnchorError))  # never a wrong answer
    assert after == expected and second != first


def test_a_read_over_the_timeout_is_a_503_and_its_reader_is_replaced(community: tuple[Engine, list[str]]) -> None:
    engine, helpers = community
    expected = _in_process(engine, "thank_you", **_kwargs("thank_you", helpers[3]))

    async def main() -> tuple[errors.AnchorError, bytes, bool]:
        pool = read_pool.ReadPool(url=_url(engine), size=1, timeout_s=60)
        try:
            await pool.read("thank_you", **_kwargs("thank_you", helpers[3]))
            (first,) = pool.pids
            pool.timeout_s = 0.000001
            with pytest.raises(errors.AnchorError) as raised:
                await pool.read("thank_you", **_kwargs("thank_you", helpers[3]))
            pool.timeout_s = 60
            after = await pool.read("thank_you", **_kwargs("thank_you", helpers[3]))
            return raised.value, after, first not in pool.pids
        finally:
            await pool.close()

    error, after, replaced = asyncio.run(main())
    assert error.status_code == 503 and error.headers == {"Retry-After": "5"}
    assert after == expected and replaced


def test_closing_ends_the_readers_and_later_reads_are_503(community: tuple[Engine, list[str]]) -> None:
    engine, helpers = community

    async def main() -> tuple[list[int], errors.AnchorError]:
        pool = read_pool.ReadPool(url=_url(engine), size=2, timeout_s=60)
        await asyncio.gather(*(pool.read("member_view", **_kwargs("member_view", m)) for m in helpers))
        pids = pool.pids
        await pool.close()
        with pytest.raises(errors.AnchorError) as raised:
            await pool.read("member_view", **_kwargs("member_view", helpers[0]))
        return pids, raised.value

    pids, error = asyncio.run(main())
    assert len(pids) == 2 and error.status_code == 503
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_an_answer_names_only_the_type_of_an_unexpected_failure(community: tuple[Engine, list[str]]) -> None:
    engine, _ = community

    def leaks(**_: object) -> None:
        raise ValueError("member pool-helper1 wrote 刚提车")

    def locked(**_: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    def missing(**_: object) -> None:
        raise errors.AnchorError(404, "not_found", "no such member", field="member_id")

    request = pickle.dumps(("x", {"as_of": datetime.now(UTC) - timedelta(days=1)}))
    assert read_pool.answer(engine, {"x": leaks}, request) == (read_pool.FAILED, "ValueError")
    status = read_pool.answer(engine, {"x": locked}, request)
    assert status[:3] == (read_pool.ERROR, 503, "unavailable") and status[-1] == {"Retry-After": "5"}
    assert read_pool.answer(engine, {"x": missing}, request) == (
        read_pool.ERROR, 404, "not_found", "no such member", "member_id", None)


@pytest.mark.parametrize(("setting", "url", "expected"), [
    (None, "sqlite:////data/recognition.db", 1),
    (None, "postgresql://anchor@db/anchor", 1),
    (2, "postgresql://anchor@db/anchor", 2),
    (0, "sqlite:////data/recognition.db", 0),
    (None, "sqlite://", 0),  # in memory: no other process can open it
    (3, "sqlite:///:memory:", 0),
])
def test_how_many_readers_by_default_and_when_configured(setting: int | None, url: str, expected: int) -> None:
    assert reads.processes(setting, url=url) == expected


_ORPHAN = """
import asyncio, sys
from datetime import UTC, datetime
from recognition import read_pool

async def main() -> None:
    pool = read_pool.ReadPool(url=sys.argv[1], size=1, timeout_s=60)
    await pool.read("member_view", member_id=sys.argv[2], as_of=datetime.now(UTC), daily_cap=12)
    print(pool.pids[0], flush=True)
    await asyncio.sleep(3600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def _running(pid: int) -> bool:
    """Whether `pid` runs: an exited orphan may stay a zombie if nothing reaps it (PID 1 in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_reader_leaves_when_its_serving_process_is_killed(community: tuple[Engine, list[str]],
                                                             tmp_path: Path) -> None:
    engine, helpers = community
    script = tmp_path / "serving.py"
    script.write_text(_ORPHAN)
    serving = subprocess.Popen([sys.executable, str(script), _url(engine), helpers[0]], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert serving.stdout is not None
        reader = int(serving.stdout.readline())
        assert _running(reader)
        serving.kill()  # SIGKILL: no chance to close anything
        serving.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not _running(reader):
                break
            time.sleep(0.05)
        else:
            os.kill(reader, signal.SIGKILL)
            pytest.fail("the reader outlived its serving process by 10 s")
    finally:
        serving.kill()


def test_a_reader_starting_while_the_pool_closes_is_stopped(community: tuple[Engine, list[str]]) -> None:
    """A service that stops during its start-up (its port taken, say) closes the pool while the background start is
    still spawning: that reader must not outlive the pool."""
    engine, _ = community

    async def main() -> list[int]:
        pool = read_pool.ReadPool(url=_url(engine), size=1, timeout_s=60)
        spawned: list[int] = []
        spawn = pool._spawn

        async def noting() -> object:
            reader = await spawn()
            spawned.append(reader.process.pid)
            return reader

        pool._spawn = noting  # type: ignore[method-assign]
        pool.start()
        await asyncio.sleep(0)  # the start is under way
        await pool.close()
        return spawned

    spawned = asyncio.run(main())
    assert len(spawned) == 1
    assert not _running(spawned[0])


def test_a_reader_that_cannot_start_is_a_503_and_the_next_read_tries_again(
        community: tuple[Engine, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, helpers = community
    expected = _in_process(engine, "member_view", **_kwargs("member_view", helpers[2]))

    async def main() -> tuple[errors.AnchorError, bytes]:
        pool = read_pool.ReadPool(url=_url(engine), size=1, timeout_s=60)
        context = pool._context

        class NoProcesses:
            def __getattr__(self, name: str) -> object:
                return getattr(context, name)

            def Process(self, **kwargs: object) -> object:
                process = context.Process(**kwargs)  # type: ignore[call-overload]
                process.start = lambda: (_ for _ in ()).throw(OSError("fork: Resource temporarily unavailable"))
                return process

        try:
            pool._context = NoProcesses()  # type: ignore[assignment]
            with pytest.raises(errors.AnchorError) as refused:
                await pool.read("member_view", **_kwargs("member_view", helpers[2]))
            pool._context = context
            return refused.value, await pool.read("member_view", **_kwargs("member_view", helpers[2]))
        finally:
            await pool.close()

    refused, after = asyncio.run(main())
    assert refused.status_code == 503 and refused.headers == {"Retry-After": "5"}
    assert after == expected


def test_readers_that_keep_failing_to_start_make_the_pool_stand_aside() -> None:
    """A reader that cannot even open its database (here: no such driver) ends before its first answer: each such
    read is a 503, and after three in a row the pool stands aside so that the service reads in threads instead of
    starting an interpreter for every read."""

    async def main() -> tuple[list[int], bool]:
        pool = read_pool.ReadPool(url="nosuchdriver://nowhere/anchor", size=1, timeout_s=60)
        statuses: list[int] = []
        try:
            while pool.available and len(statuses) < 10:
                try:
                    await pool.read("member_view", member_id="m", as_of=AS_OF, daily_cap=12)
                except errors.AnchorError as error:
                    statuses.append(error.status_code)
            return statuses, pool.available
        finally:
            await pool.close()

    statuses, available = asyncio.run(main())
    assert statuses == [503] * read_pool.FAILED_STARTS and not available
