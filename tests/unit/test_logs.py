import logging

from shared.logs import Throttle


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeated_aiokafka_errors_pass_once_per_window_and_report_how_many_were_held_back() -> None:
    now = [0.0]
    throttle = Throttle(window_s=30.0, clock=lambda: now[0])
    passed = []
    for i in range(100):
        now[0] = i * 0.1  # ten a second, as while the broker is down
        record = _record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "refused")
        if throttle.filter(record):
            passed.append(record)
    assert len(passed) == 1
    now[0] = 31.0
    again = _record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "refused")
    assert throttle.filter(again) and again.suppressed == 99  # type: ignore[attr-defined]
    # Another message, level or logger is its own stream; other libraries and our own logs are never held back.
    assert throttle.filter(_record("aiokafka.conn", "Connection to %s closed", "b"))
    assert throttle.filter(_record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "x",
                                   level=logging.WARNING))
    for _ in range(5):
        assert throttle.filter(_record("anchor.kafka", "batch failed, will retry"))
