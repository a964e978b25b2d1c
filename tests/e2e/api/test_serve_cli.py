"""`conveyor serve` and `conveyor tokens` as an operator runs them: separate processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from conveyor.cli.serve import is_loopback

from .conftest import free_port, poll


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return {**env, "CONVEYOR_DATABASE_URL": database_url, **extra}


def _conveyor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return _env(database_url, CONVEYOR_STORAGE_URL=f"file://{tmp_path / 'data'}")


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[httpx.Client]:
    """`conveyor serve` on a free loopback port, stopped by its PID afterwards."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {(tmp_path / 'serve.log').read_text()}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        poll(up, timeout=30, what="conveyor serve answering")
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        proc.terminate()
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            log.close()
        assert code == 0, (tmp_path / "serve.log").read_text()


def test_serve_answers_and_turns_auth_on_with_the_first_token(
    server: httpx.Client, env: dict[str, str]
) -> None:
    submitted = server.post("/jobs", json={"type": "echo", "payload": {"message": "hi"}})
    assert submitted.status_code == 202
    assert server.get(submitted.headers["location"]).json()["status"] == "queued"
    assert server.get("/readyz").status_code == 200

    created = _conveyor(env, "tokens", "create", "ci", "--scope", "submit", "--tenant", "acme")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("cvy_") and "\n" not in token
    assert "not shown again" in created.stderr

    body = {"type": "echo", "payload": {}}
    assert server.post("/jobs", json=body).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    accepted = server.post("/jobs", json=body, headers=auth)
    assert accepted.status_code == 202
    assert accepted.json()["tenant"] == "acme"
    assert server.get("/jobs", headers=auth).status_code == 403

    listed = _conveyor(env, "tokens", "list", "--json")
    records = orjson.loads(listed.stdout)
    assert [(r["name"], r["scopes"], r["tenant"]) for r in records] == [("ci", ["submit"], "acme")]
    assert token not in listed.stdout

    revoked = _conveyor(env, "tokens", "revoke", "ci")
    assert revoked.returncode == 0
    assert server.post("/jobs", json=body, headers=auth).status_code == 401
    assert server.post("/jobs", json=body).status_code == 202  # no active token: open again


def test_serve_refuses_a_public_address_without_auth(env: dict[str, str]) -> None:
    result = _conveyor(env, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_tokens_reject_bad_input_with_status_2(env: dict[str, str]) -> None:
    bad_scope = _conveyor(env, "tokens", "create", "x", "--scope", "root")
    assert bad_scope.returncode == 2
    assert "unknown scope" in bad_scope.stderr and "Traceback" not in bad_scope.stderr
    missing = _conveyor(env, "tokens", "revoke", "nobody")
    assert missing.returncode == 2
    assert "no active token" in missing.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("api.internal", False),
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
