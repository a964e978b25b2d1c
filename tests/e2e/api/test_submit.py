"""POST /jobs and POST /jobs/bulk as a client drives them."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from .conftest import Served


def test_submit_answers_202_with_location_and_the_job_runs(served: Served) -> None:
    response = served.client.post(
        "/jobs", json={"type": "greet", "payload": {"name": "Ada"}, "options": {"priority": "high"}}
    )
    assert response.status_code == 202
    job = response.json()
    assert job["type"] == "greet"
    assert job["status"] == "queued"
    assert job["priority"] == "high"
    assert job["payload"] == {"name": "Ada"}
    assert response.headers["location"] == f"/jobs/{job['id']}"

    assert served.app.run_burst() == 1
    done = served.client.get(response.headers["location"])
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "succeeded"
    assert body["result"] == {"greeted": "Ada", "times": 1}
    assert [e["outcome"] for e in body["executions"]] == ["succeeded"]


def test_options_may_also_sit_at_the_top_level(served: Served) -> None:
    response = served.client.post(
        "/jobs", json={"type": "greet", "payload": {"name": "Bo"}, "queue": "other", "delay": 60}
    )
    assert response.status_code == 202
    assert response.json()["queue"] == "other"
    assert response.json()["status"] == "scheduled"


def test_an_idempotent_repeat_answers_200_with_the_existing_job(served: Served) -> None:
    body = {"type": "greet", "payload": {"name": "Cy"}}
    first = served.client.post("/jobs", json=body, headers={"Idempotency-Key": "order-1"})
    again = served.client.post("/jobs", json=body, headers={"Idempotency-Key": "order-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    # The key may also come as an option; the same key is the same job.
    as_option = served.client.post(
        "/jobs", json={**body, "options": {"idempotency_key": "order-1"}}
    )
    assert as_option.status_code == 200
    assert as_option.json()["id"] == first.json()["id"]
    # Keys are unique per tenant: another tenant's same key is a new job.
    other = served.client.post(
        "/jobs",
        json={**body, "options": {"tenant": "acme"}},
        headers={"Idempotency-Key": "order-1"},
    )
    assert other.status_code == 202
    assert other.json()["id"] != first.json()["id"]


def test_header_and_option_keys_must_agree(served: Served) -> None:
    response = served.client.post(
        "/jobs",
        json={"type": "greet", "payload": {"name": "D"}, "options": {"idempotency_key": "a"}},
        headers={"Idempotency-Key": "b"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_option"


def test_unknown_type_is_422_unknown_job_type(served: Served) -> None:
    response = served.client.post("/jobs", json={"type": "greeet", "payload": {}})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_job_type"
    assert "greeet" in error["message"] and "greet" in error["message"]
    assert set(error) == {"code", "message", "details"}


def test_invalid_payload_is_422_with_field_details(served: Served) -> None:
    response = served.client.post(
        "/jobs", json={"type": "greet", "payload": {"name": "", "times": "many"}}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_payload"
    fields = {tuple(d["loc"]) for d in error["details"]}
    assert fields == {("name",), ("times",)}
    assert all(d["msg"] for d in error["details"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"type": "greet", "payload": {"name": "E"}, "options": {"colour": "red"}},
            "invalid_option",
        ),
        (
            {"type": "greet", "payload": {"name": "E"}, "options": {"priority": "urgent"}},
            "invalid_option",
        ),
        (
            {"type": "greet", "payload": {"name": "E"}, "options": {"connection": 1}},
            "invalid_option",
        ),
        ({"payload": {"name": "E"}}, "invalid_request"),
        (["greet"], "invalid_request"),
    ],
)
def test_bad_requests_are_422_and_write_nothing(served: Served, body: object, code: str) -> None:
    response = served.client.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert served.client.get("/jobs").json()["items"] == []


def test_malformed_json_is_400(served: Served) -> None:
    response = served.client.post(
        "/jobs", content=b'{"type": "greet",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def _oversized() -> bytes:
    return orjson.dumps({"type": "greet", "payload": {"name": "x" * (256 * 1024)}})


def test_a_body_over_256_kib_is_413(served: Served) -> None:
    response = served.client.post(
        "/jobs", content=_oversized(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_streamed_body_over_256_kib_is_413_too(served: Served) -> None:
    # No Content-Length: the limit is enforced while reading.
    data = _oversized()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 16 * 1024):
            yield data[start : start + 16 * 1024]

    response = served.client.post(
        "/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert served.client.get("/jobs").json()["items"] == []


def test_a_body_just_under_the_limit_is_accepted(served: Served) -> None:
    name = "y" * (256 * 1024 - 100)
    response = served.client.post("/jobs", json={"type": "greet", "payload": {"name": name}})
    assert response.status_code == 202


def test_bulk_answers_202_with_ids_in_order(served: Served) -> None:
    jobs = [{"type": "greet", "payload": {"name": f"n{i}"}} for i in range(5)]
    jobs.append({"type": "greet", "payload": {"name": "top"}, "priority": "low"})
    response = served.client.post("/jobs/bulk", json={"jobs": jobs})
    assert response.status_code == 202
    ids = response.json()["ids"]
    assert len(ids) == 6
    names = [served.client.get(f"/jobs/{i}").json()["payload"]["name"] for i in ids]
    assert names == [*(f"n{i}" for i in range(5)), "top"]
    assert served.client.get(f"/jobs/{ids[-1]}").json()["priority"] == "low"


def test_bulk_is_all_or_nothing(served: Served) -> None:
    jobs = [
        {"type": "greet", "payload": {"name": "ok"}},
        {"type": "greet", "payload": {"name": ""}},
        {"type": "greet", "payload": {"name": "ok too"}},
    ]
    response = served.client.post("/jobs/bulk", json={"jobs": jobs})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_payload"
    assert "jobs[1]" in error["message"]
    assert served.client.get("/jobs").json()["items"] == []

    unknown = served.client.post(
        "/jobs/bulk", json={"jobs": [jobs[0], {"type": "nope", "payload": {}}]}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_job_type"
    assert served.client.get("/jobs").json()["items"] == []


@pytest.mark.parametrize("body", [{}, {"jobs": []}, {"jobs": "greet"}, []])
def test_bulk_needs_a_list_of_jobs(served: Served, body: object) -> None:
    response = served.client.post("/jobs/bulk", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_bulk_batch_progress(served: Served) -> None:
    jobs = [{"type": "greet", "payload": {"name": f"r{i}"}} for i in range(3)]
    jobs.append({"type": "boom", "payload": {}})
    response = served.client.post(
        "/jobs/bulk", json={"jobs": jobs, "batch_kind": "welcome", "batch_meta": {"wave": 1}}
    )
    assert response.status_code == 202
    batch_id = response.json()["batch_id"]
    assert batch_id
    before = served.client.get(f"/batches/{batch_id}").json()
    assert (before["total"], before["finished"], before["done"]) == (4, 0, False)
    assert before["meta"] == {"wave": 1}

    served.app.run_burst()
    after = served.client.get(f"/batches/{batch_id}").json()
    assert after["done"] is True
    assert after["counts"] == {"succeeded": 3, "dead": 1}
    missing = served.client.get("/batches/0000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_concurrent_repeats_of_one_key_make_one_job(served: Served) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    body = {"type": "greet", "payload": {"name": "race"}}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            return client.post("/jobs", json=body, headers={"Idempotency-Key": "race-1"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len({r.json()["id"] for r in responses}) == 1


def test_a_tenant_over_its_rate_gets_429_with_retry_after(served: Served) -> None:
    response = served.client.post(
        "/jobs", json={"type": "throttled", "payload": {"tenant": "acme"}}
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"retry_after": 2.5}
