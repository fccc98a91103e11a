"""The embedded default's CPU priorities: the classifier's batches yield the cores to the services that answer
requests (`devstack.processes.EMBEDDED_ENV`, `<P>_NICENESS`)."""

import os

from devstack.stack import Stack


def _nice(pid: int) -> int:
    # Field 19 of /proc/<pid>/stat; the command name (field 2) may contain spaces, so count from its ")".
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def test_the_classifier_runs_at_a_lower_priority_than_the_services_that_answer_requests(stack: Stack) -> None:
    mine = os.nice(0)
    nice = {name: _nice(stack.children[name].proc.pid) for name in ("ingest", "classifier", "recognition")}  # type: ignore[union-attr]
    assert nice == {"ingest": mine, "classifier": min(19, mine + 10), "recognition": mine}
