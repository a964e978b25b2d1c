"""Probes, Prometheus metrics, the OpenAPI document, and answers while a dependency is down."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

import conveyor

from . import handlers
from .conftest import Served, free_port, serving
from .proxy import TcpProxy


def _samples(served: Served) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = served.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return samples.get((name, frozenset(labels.items())))


def test_healthz_and_readyz(served: Served) -> None:
    assert served.client.get("/healthz").json() == {"status": "ok"}
    ready = served.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_openapi_describes_the_api(served: Served) -> None:
    document = served.client.get("/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/jobs",
        "/jobs/bulk",
        "/jobs/{job_id}",
        "/jobs/{job_id}/cancel",
        "/queues",
        "/queues/{name}/pause",
        "/workers",
        "/handlers",
        "/batches/{batch_id}",
        "/metrics",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    body = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SubmitRequest"}
    schemas = document["components"]["schemas"]
    assert {"SubmitRequest", "JobOptions", "BulkRequest", "Job", "ErrorBody"} <= set(schemas)
    assert set(paths["/jobs"]["post"]["responses"]) >= {"200", "202", "413", "422", "429", "503"}
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_metrics_count_jobs_and_export_queue_depth(served: Served) -> None:
    client = served.client
    for priority in ("high", "low"):
        client.post("/jobs", json={"type": "greet", "payload": {"name": "m"}, "priority": priority})
    client.post("/jobs", json={"type": "boom", "payload": {}})
    before = _samples(served)
    assert _value(before, "conveyor_store_up") == 1
    assert _value(before, "conveyor_queue_depth", queue="default", priority="high") == 1
    assert _value(before, "conveyor_queue_depth", queue="default", priority="medium") == 1
    assert _value(before, "conveyor_queue_depth", queue="default", priority="low") == 1
    # An empty queue a handler serves is exported at zero, not left out.
    assert _value(before, "conveyor_queue_depth", queue="slow", priority="high") == 0
    assert _value(before, "conveyor_jobs_submitted_total", type="greet", queue="default") == 2

    served.app.run_burst()
    after = _samples(served)
    assert _value(after, "conveyor_queue_depth", queue="default", priority="high") == 0
    assert _value(after, "conveyor_queue_dead", queue="default") == 1
    finished = "conveyor_jobs_finished_total"
    assert _value(after, finished, type="greet", queue="default", outcome="succeeded") == 2
    assert _value(after, finished, type="boom", queue="default", outcome="permanent_error") == 1
    durations = "conveyor_job_duration_seconds_count"
    assert _value(after, durations, type="greet", outcome="succeeded") == 2
    assert _value(after, "conveyor_workers_live") == 0


def test_a_paused_queue_is_exported(served: Served) -> None:
    served.client.post("/queues/slow/pause")
    assert _value(_samples(served), "conveyor_queue_paused", queue="slow") == 1


def test_readyz_is_503_when_the_broker_is_unreachable(
    make_served: Callable[..., Served],
) -> None:
    served = make_served(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    response = served.client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["database"] == "ok"
    assert error["details"]["broker"] != "ok"
    # Jobs still land in the system of record; the reconciler dispatches them later.
    assert (
        served.client.post("/jobs", json={"type": "greet", "payload": {"name": "r"}}).status_code
        == 202
    )


@pytest.mark.redis
def test_readyz_with_a_reachable_redis_broker(make_served: Callable[..., Served]) -> None:
    served = make_served(broker_url=f"redis://127.0.0.1:6379/0?prefix=apitest-{uuid.uuid4().hex}:")
    assert served.client.get("/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}


# --- the database goes away -------------------------------------------------------------


@pytest.fixture
def flaky_database(pg_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """The run's PostgreSQL database, reached through a proxy the test can take down."""
    url = make_url(pg_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.up()
    try:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.down()


@pytest.mark.postgres
def test_writes_answer_503_never_2xx_while_the_database_is_down(
    flaky_database: tuple[TcpProxy, str],
    fast_settings: dict,  # type: ignore[type-arg]
) -> None:
    proxy, url = flaky_database
    app = conveyor.Conveyor(url, plugins=[handlers], entry_points=False, **fast_settings)
    greet = {"type": "greet", "payload": {"name": "down"}}
    try:
        with serving(app, require_auth=False) as served:
            client = served.client
            job_id = client.post("/jobs", json=greet).json()["id"]
            assert client.get("/readyz").status_code == 200

            proxy.down()
            for method, path, body in [
                ("POST", "/jobs", greet),
                ("POST", "/jobs/bulk", {"jobs": [greet, greet]}),
                ("POST", f"/jobs/{job_id}/cancel", None),
                ("POST", f"/jobs/{job_id}/retry", None),
                ("POST", "/queues/default/pause", None),
                ("GET", "/jobs", None),
            ]:
                response = client.request(method, path, json=body)
                assert response.status_code == 503, (method, path, response.text)
                assert response.json()["error"]["code"] == "store_unavailable"
                assert response.headers["retry-after"]
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["details"]["database"] != "ok"
            assert client.get("/healthz").status_code == 200
            metrics = _samples(served)
            assert _value(metrics, "conveyor_store_up") == 0

            proxy.up()
            assert client.get("/readyz").status_code == 200
            assert client.post("/jobs", json=greet).status_code == 202
            assert client.get(f"/jobs/{job_id}").json()["status"] == "queued"
    finally:
        app.close()


@pytest.mark.postgres
def test_token_checks_answer_503_while_the_database_is_down(
    flaky_database: tuple[TcpProxy, str],
) -> None:
    proxy, url = flaky_database
    app = conveyor.Conveyor(url, plugins=[handlers], entry_points=False)
    try:
        with serving(app) as served:
            assert served.client.get("/jobs").status_code == 200
            proxy.down()
            # Without a reachable database nobody can tell whether tokens exist: never 2xx.
            assert served.client.get("/jobs").status_code == 503
            token = served.auth("cvy_whatever")
            assert served.client.post("/jobs", json={}, headers=token).status_code == 503
    finally:
        app.close()


def test_a_worker_process_can_export_its_own_job_metrics(
    make_app: Callable[..., conveyor.Conveyor],
) -> None:
    from conveyor.metrics import serve_metrics

    app = make_app(plugins=[handlers], entry_points=False)
    port = free_port()
    server = serve_metrics(app, port)
    try:
        app.submit("greet", {"name": "w"})
        app.run_burst()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert (
        _value(
            samples,
            "conveyor_jobs_finished_total",
            type="greet",
            queue="default",
            outcome="succeeded",
        )
        == 1
    )
    # Queue gauges stay with the API, so that N workers do not report the backlog N times.
    assert not any(name.startswith("conveyor_queue_") for name, _ in samples)
