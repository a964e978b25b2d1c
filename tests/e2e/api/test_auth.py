"""Bearer tokens: scopes, tenants, revocation, and when authentication is on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.core.store import tokens

from .conftest import Served

ADMIN = "admin-bootstrap-token"
GREET = {"type": "greet", "payload": {"name": "T"}}


def _token(served: Served, *scopes: str, tenant: str | None = None) -> str:
    _, token = tokens.create_token(served.app.store.engine, "test", scopes, tenant)
    return token


@pytest.fixture
def secured(make_served: Callable[..., Served]) -> Served:
    return make_served(admin_token=ADMIN)


def test_without_a_token_every_api_call_is_401(secured: Served) -> None:
    for method, path in [
        ("POST", "/jobs"),
        ("POST", "/jobs/bulk"),
        ("GET", "/jobs"),
        ("GET", "/jobs/x"),
        ("POST", "/jobs/x/cancel"),
        ("POST", "/jobs/x/retry"),
        ("GET", "/handlers"),
        ("GET", "/queues"),
        ("POST", "/queues/default/pause"),
        ("GET", "/workers"),
        ("GET", "/batches/x"),
    ]:
        response = secured.client.request(method, path, json=GREET)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_probes_metrics_and_schema_need_no_token(secured: Served) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert secured.client.get(path).status_code == 200, path


def test_unknown_or_malformed_tokens_are_401(secured: Served) -> None:
    for header in ("Bearer nope", "Bearer", "Basic YWRtaW46YWRtaW4=", ADMIN):
        response = secured.client.get("/jobs", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_the_admin_token_has_every_scope(secured: Served) -> None:
    auth = secured.auth(ADMIN)
    job = secured.client.post("/jobs", json=GREET, headers=auth)
    assert job.status_code == 202
    assert secured.client.get("/jobs", headers=auth).status_code == 200
    assert secured.client.post(f"/jobs/{job.json()['id']}/cancel", headers=auth).status_code == 200
    assert secured.client.post("/queues/default/pause", headers=auth).status_code == 200


def test_scopes_are_enforced_with_403(secured: Served) -> None:
    reader = secured.auth(_token(secured, "read"))
    submitter = secured.auth(_token(secured, "submit"))
    admin = secured.auth(_token(secured, "admin"))

    denied = secured.client.post("/jobs", json=GREET, headers=reader)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert (
        secured.client.post("/jobs/bulk", json={"jobs": [GREET]}, headers=reader).status_code == 403
    )

    job_id = secured.client.post("/jobs", json=GREET, headers=submitter).json()["id"]
    assert secured.client.get(f"/jobs/{job_id}", headers=submitter).status_code == 403
    assert secured.client.get(f"/jobs/{job_id}", headers=reader).status_code == 200
    assert secured.client.get("/queues", headers=reader).status_code == 200
    assert secured.client.post(f"/jobs/{job_id}/cancel", headers=reader).status_code == 403
    assert secured.client.post(f"/jobs/{job_id}/cancel", headers=submitter).status_code == 403
    assert secured.client.post("/queues/default/pause", headers=reader).status_code == 403
    assert secured.client.post(f"/jobs/{job_id}/cancel", headers=admin).status_code == 200
    assert secured.client.post(f"/jobs/{job_id}/retry", headers=admin).status_code == 202


def test_a_tenant_token_sees_and_submits_for_its_tenant_only(secured: Served) -> None:
    acme = secured.auth(_token(secured, "submit", "read", tenant="acme"))
    acme_admin = secured.auth(_token(secured, "admin", tenant="acme"))
    root = secured.auth(ADMIN)

    mine = secured.client.post("/jobs", json=GREET, headers=acme)
    assert mine.status_code == 202
    assert mine.json()["tenant"] == "acme"  # bound without asking
    other = secured.client.post(
        "/jobs", json={**GREET, "options": {"tenant": "globex"}}, headers=root
    )
    assert other.status_code == 202

    spoof = secured.client.post(
        "/jobs", json={**GREET, "options": {"tenant": "globex"}}, headers=acme
    )
    assert spoof.status_code == 403
    bulk = secured.client.post(
        "/jobs/bulk", json={"jobs": [GREET, {**GREET, "tenant": "globex"}]}, headers=acme
    )
    assert bulk.status_code == 403

    listed = secured.client.get("/jobs", headers=acme).json()["items"]
    assert [job["id"] for job in listed] == [mine.json()["id"]]
    assert secured.client.get("/jobs", params={"tenant": "globex"}, headers=acme).status_code == 403
    hidden = secured.client.get(f"/jobs/{other.json()['id']}", headers=acme)
    assert hidden.status_code == 404
    assert (
        secured.client.post(f"/jobs/{other.json()['id']}/cancel", headers=acme_admin).status_code
        == 404
    )
    assert (
        secured.client.post(f"/jobs/{mine.json()['id']}/cancel", headers=acme_admin).status_code
        == 200
    )
    # Queues are everyone's: a tenant's admin cannot pause them.
    assert secured.client.post("/queues/default/pause", headers=acme_admin).status_code == 403
    assert len(secured.client.get("/jobs", headers=root).json()["items"]) == 2


def test_a_revoked_token_is_refused_at_once(secured: Served) -> None:
    token = _token(secured, "read")
    assert secured.client.get("/jobs", headers=secured.auth(token)).status_code == 200
    tokens.revoke_token(secured.app.store.engine, "test")
    assert secured.client.get("/jobs", headers=secured.auth(token)).status_code == 401


def test_authentication_turns_on_with_the_first_token(served: Served) -> None:
    assert served.client.get("/jobs").status_code == 200  # a fresh local install is open
    record, token = tokens.create_token(served.app.store.engine, "first", ["read"])
    assert served.client.get("/jobs").status_code == 401
    assert served.client.get("/jobs", headers=served.auth(token)).status_code == 200
    tokens.revoke_token(served.app.store.engine, record.id)
    assert served.client.get("/jobs").status_code == 200


def test_required_auth_refuses_even_without_any_token(make_served: Callable[..., Served]) -> None:
    served = make_served(require_auth=True)
    assert served.client.get("/jobs").status_code == 401
    assert served.client.get("/healthz").status_code == 200
