"""Reading and acting on jobs, queues, workers and handlers over REST."""

from __future__ import annotations

from .conftest import Served, poll, running_worker


def _submit(served: Served, name: str, **options: object) -> str:
    response = served.client.post(
        "/jobs", json={"type": "greet", "payload": {"name": name}, "options": options}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_list_filters_and_walks_pages_with_the_cursor(served: Served) -> None:
    ids = [_submit(served, f"p{i}") for i in range(5)]
    other = _submit(served, "elsewhere", queue="mail", tenant="acme")
    hold = served.client.post("/jobs", json={"type": "hold", "payload": {"seconds": 0}}).json()

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = served.client.get("/jobs", params=params).json()
        assert len(page["items"]) <= 2
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [hold["id"], other, *reversed(ids)]  # newest first, each once

    def ids_for(**params: object) -> list[str]:
        response = served.client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["items"]]

    assert ids_for(type="hold") == [hold["id"]]
    assert ids_for(queue="mail") == [other]
    assert ids_for(tenant="acme") == [other]
    assert len(ids_for(status="queued")) == 7
    assert ids_for(status="succeeded") == []
    served.app.run_burst(queues=["default"])
    assert sorted(ids_for(status="succeeded")) == sorted(ids)


def test_list_rejects_bad_filters_in_the_error_shape(served: Served) -> None:
    for params in ({"status": "finished"}, {"limit": 0}, {"limit": 100000}):
        response = served.client.get("/jobs", params=params)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"]


def test_an_unknown_job_is_404(served: Served) -> None:
    response = served.client.get("/jobs/01a00000-0000-7000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    for action in ("cancel", "retry"):
        response = served.client.post(f"/jobs/01a00000-0000-7000-8000-000000000000/{action}")
        assert response.status_code == 404


def test_cancel_then_retry_with_409_where_the_state_forbids(served: Served) -> None:
    job_id = _submit(served, "c")
    cancelled = served.client.post(f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    again = served.client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"

    retried = served.client.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 202
    assert retried.json()["status"] == "queued"

    not_dead = served.client.post(f"/jobs/{job_id}/retry")
    assert not_dead.status_code == 409
    served.app.run_burst()
    assert served.client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"


def test_a_dead_job_can_be_retried(served: Served) -> None:
    job_id = served.client.post("/jobs", json={"type": "boom", "payload": {}}).json()["id"]
    served.app.run_burst()
    assert served.client.get(f"/jobs/{job_id}").json()["status"] == "dead"
    retried = served.client.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 202
    served.app.run_burst()
    job = served.client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "dead"
    assert job["attempts"] == 2


def test_cancelling_a_running_job_is_202_and_it_stops(served: Served) -> None:
    job_id = served.client.post("/jobs", json={"type": "hold", "payload": {"seconds": 30}}).json()[
        "id"
    ]
    with running_worker(served.app, queues=["slow"]):
        poll(
            lambda: served.client.get(f"/jobs/{job_id}").json()["status"] == "running",
            what="job running",
        )
        workers = served.client.get("/workers").json()
        assert len(workers) == 1
        assert workers[0]["queues"] == ["slow"]
        assert {"host", "pid", "concurrency", "running", "heartbeat_at"} <= set(workers[0])

        response = served.client.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "running"
        poll(
            lambda: served.client.get(f"/jobs/{job_id}").json()["status"] == "cancelled",
            what="job cancelled",
        )
    assert served.client.get("/workers").json() == []


def test_queues_report_depth_per_priority_and_pause(served: Served) -> None:
    empty = served.client.get("/queues").json()
    assert empty["default"]["depth"] == 0  # a handler's queue shows even when empty
    assert empty["slow"]["paused"] is False

    for priority in ("high", "high", "low"):
        _submit(served, priority, priority=priority)
    _submit(served, "later", delay=600)
    stats = served.client.get("/queues").json()["default"]
    assert stats["ready"] == {"high": 2, "medium": 0, "low": 1}
    assert stats["depth"] == 3
    assert stats["scheduled"] == 1

    paused = served.client.post("/queues/default/pause")
    assert paused.status_code == 200
    assert paused.json() == {"name": "default", "paused": True}
    assert served.client.get("/queues").json()["default"]["paused"] is True
    assert served.app.store.paused_queues() == {"default"}

    assert served.client.post("/queues/default/resume").json()["paused"] is False
    assert served.app.run_burst(queues=["default"]) == 3


def test_handlers_describe_each_job_type(served: Served) -> None:
    response = served.client.get("/handlers")
    assert response.status_code == 200
    described = {h["type"]: h for h in response.json()}
    assert set(described) == {"greet", "hold", "boom", "throttled"}
    greet = described["greet"]
    assert greet["description"] == "Greets someone; the result says whom."
    assert greet["queue"] == "default"
    assert greet["max_attempts"] == 3
    assert greet["timeout"] == 30
    assert greet["plugin"]
    assert greet["payload_schema"]["properties"]["name"]["type"] == "string"
    assert greet["payload_schema"]["required"] == ["name"]
