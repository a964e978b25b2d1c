"""depends_on: children wait for parents; a failed parent cancels its descendants."""

from __future__ import annotations

import pytest

import conveyor
from conveyor.core.errors import InvalidOption

from . import handlers


def test_children_wait_for_every_parent(app: conveyor.Conveyor) -> None:
    a = app.submit("record", {"tag": "a"})
    b = app.submit("record", {"tag": "b"}, priority="low")
    child = app.submit("record", {"tag": "child"}, depends_on=[a.id, b.id], priority="high")
    assert child.status == "waiting" and child.depends_on == [a.id, b.id]
    app.run_burst(concurrency=1)
    assert handlers.RAN == ["a", "b", "child"]
    assert app.get(child.id).status == "succeeded"


def test_a_dead_parent_cancels_descendants_saying_why(app: conveyor.Conveyor) -> None:
    parent = app.submit("flaky_test", {"fail_times": 1, "permanent": True})
    child = app.submit("record", {"tag": "c"}, depends_on=[parent.id])
    grandchild = app.submit("record", {"tag": "g"}, depends_on=[child.id])
    app.run_burst()
    assert app.get(parent.id).status == "dead"
    for job in (child, grandchild):
        done = app.get(job.id)
        assert done.status == "cancelled"
        assert "dependency" in (done.error or "") and "ended" in (done.error or "")
    assert handlers.RAN == []


def test_depending_on_finished_jobs(app: conveyor.Conveyor) -> None:
    ok = app.submit("record", {"tag": "ok"})
    app.run_burst()
    assert app.submit("record", {"tag": "after"}, depends_on=[ok.id]).status == "queued"
    app.cancel(cancelled := app.submit("record", {"tag": "x"}, delay=60).id)
    late = app.submit("record", {"tag": "never"}, depends_on=[cancelled])
    assert late.status == "cancelled" and cancelled in (late.error or "")


def test_unknown_dependency_is_refused(app: conveyor.Conveyor) -> None:
    with pytest.raises(InvalidOption, match="no job has id"):
        app.submit("record", {"tag": "x"}, depends_on=["nope"])


def test_dependencies_within_one_bulk_submit(app: conveyor.Conveyor) -> None:
    [first] = app.submit_many([{"type": "record", "payload": {"tag": "1"}}])
    jobs = app.submit_many(
        [
            {"type": "record", "payload": {"tag": "2"}, "depends_on": [first.id]},
        ]
    )
    app.run_burst(concurrency=1)
    assert handlers.RAN == ["1", "2"] and app.get(jobs[0].id).status == "succeeded"
