from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import OperationalError, ProgrammingError

from shared.kafka import Action, PoisonMessage, backoff, decide


def test_poison_is_dead_lettered_at_once() -> None:
    assert decide(PoisonMessage("bad json"), 1, max_attempts=5) is Action.DEAD_LETTER


def test_infrastructure_failures_are_retried_without_limit() -> None:
    db_down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    for attempts in (1, 10, 1000):
        assert decide(db_down, attempts, max_attempts=3) is Action.RETRY
        assert decide(KafkaConnectionError(), attempts, max_attempts=3) is Action.RETRY
        assert decide(ConnectionResetError(), attempts, max_attempts=3) is Action.RETRY
        assert decide(TimeoutError(), attempts, max_attempts=3) is Action.RETRY


def test_unknown_errors_get_limited_attempts() -> None:
    bug = ValueError("unexpected")
    assert decide(bug, 1, max_attempts=3) is Action.RETRY
    assert decide(bug, 2, max_attempts=3) is Action.RETRY
    assert decide(bug, 3, max_attempts=3) is Action.DEAD_LETTER
    schema = ProgrammingError("INSERT", {}, Exception("column does not exist"))
    assert decide(schema, 3, max_attempts=3) is Action.DEAD_LETTER


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n, base=0.5, cap=4) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 4, 4]
