"""The `conveyor` command driven as a user drives it: one subprocess per command, on a SQLite
file of the test's own, and on a fresh PostgreSQL database where the marker says so."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
from pathlib import Path

import pytest

# The Job JSON, execution and handler fields of shared/CONTRACT.md.
# fmt: off
JOB_FIELDS = {
    "id", "type", "queue", "priority", "status", "payload", "result", "error", "attempts",
    "max_attempts", "tenant", "idempotency_key", "run_at", "created_at", "started_at",
    "finished_at", "depends_on", "batch_id", "progress", "executions",
}
EXECUTION_FIELDS = {
    "attempt", "worker", "started_at", "finished_at", "outcome", "error_type", "error",
    "duration_ms",
}
HANDLER_FIELDS = {
    "type", "description", "payload_schema", "queue", "max_attempts", "timeout", "plugin",
}
# fmt: on
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ok(result, code: int = 0) -> str:
    assert result.returncode == code, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout


def as_json(result):
    return json.loads(ok(result))


def submitted_id(result) -> str:
    out = ok(result)
    assert JOB_ID.match(out.strip()), out
    return out.strip()


def refused(result) -> str:
    """Bad input: exit 2, exactly one line on stderr, nothing on stdout, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


# --- submit --------------------------------------------------------------------------------


def test_submit_prints_only_the_job_id(cli):
    result = cli("submit", "echo", "-p", "message=hello")
    assert result.stdout.count("\n") == 1
    job_id = submitted_id(result)
    assert result.stderr == ""
    assert as_json(cli("status", job_id, "--json"))["payload"] == {"message": "hello"}


def test_submit_json_prints_the_job_with_the_contract_fields(cli):
    job = as_json(
        cli(
            "submit",
            "echo",
            "--payload",
            '{"message": "hi", "data": {"n": 1}}',
            "--json",
            "--priority",
            "high",
            "--max-attempts",
            "3",
            "--timeout",
            "12",
            "--tenant",
            "acme",
            "--idempotency-key",
            "order-7",
            "--delay",
            "3600",
        )
    )
    assert set(job) >= JOB_FIELDS
    assert JOB_ID.match(job["id"])
    assert (job["type"], job["queue"], job["priority"]) == ("echo", "default", "high")
    assert job["payload"] == {"message": "hi", "data": {"n": 1}}
    assert (job["status"], job["attempts"], job["max_attempts"]) == ("scheduled", 0, 3)
    assert (job["tenant"], job["idempotency_key"]) == ("acme", "order-7")
    assert job["run_at"] > job["created_at"]
    assert job["executions"] == [] and job["result"] is None and job["depends_on"] == []

    # An idempotent repeat answers with the job that exists.
    again = cli(
        "submit",
        "echo",
        "--payload",
        '{"message": "hi", "data": {"n": 1}}',
        "--tenant",
        "acme",
        "--idempotency-key",
        "order-7",
    )
    assert submitted_id(again) == job["id"]


def test_submit_with_key_value_pairs_and_a_dependency(cli):
    parent = submitted_id(cli("submit", "echo", "-p", "message=first"))
    child = as_json(
        cli(
            "submit",
            "echo",
            "-p",
            "message=second",
            "-p",
            'data={"k": [1, 2]}',
            "--depends-on",
            parent,
            "--json",
        )
    )
    assert child["payload"] == {"message": "second", "data": {"k": [1, 2]}}
    assert (child["status"], child["depends_on"]) == ("waiting", [parent])
    ok(cli("worker", "--burst"))
    assert as_json(cli("status", child["id"], "--json"))["status"] == "succeeded"


# The five kinds of bad input every user meets, each in a process of its own...
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["submit", "no_such_type"], "unknown job type 'no_such_type'"),
        (["submit", "echo", "--payload", "{not json"], "not valid JSON"),
        (["submit", "echo", "--payload", '{"message": 5}'], "invalid payload for 'echo'"),
        (["submit", "echo", "--priority", "urgent"], "urgent"),
        (["submit"], "Missing argument 'TYPE'"),
        (["status", "no-such-job"], "no-such-job"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_problem(cli, args, says):
    assert says in refused(cli(*args))


# ...and the rest through the same entry point in this process (a process each costs a
# second or two of start-up, and the path from argv to exit status is the same).
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["submit", "echo", "--payload", "[1, 2]"], "must be a JSON object"),
        (["submit", "flaky", "--payload", "{}"], "key"),
        (["submit", "echo", "--payload", "{}", "-p", "a=b"], "not both"),
        (["submit", "echo", "--max-attempts", "0"], "max_attempts"),
        (["submit", "echo", "--max-attempts", "many"], "--max-attempts"),
        (["submit", "echo", "--delay", "-5"], "delay"),
        (["submit", "echo", "--run-at", "next tuesday"], "ISO 8601"),
        (["submit", "echo", "-p", "novalue"], "key=value"),
        (["submit", "echo", "--depends-on", "no-such-job"], "no-such-job"),
        (["submit", "echo", "--queue"], "--queue"),
        (["status"], "Missing argument 'ID'"),
        (["cancel", "no-such-job"], "no-such-job"),
        (["retry", "no-such-job"], "no-such-job"),
        (["jobs", "--status", "bogus"], "bogus"),
        (["jobs", "--limit", "0"], "--limit"),
        (["prune", "--older-than", "soon"], "soon"),
        (["dlq", "requeue"], "--all"),
        (["worker", "--autoscale", "3:1"], "MIN:MAX"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_more_bad_input_exits_2_with_one_line(args, says, tmp_path, monkeypatch, capsys):
    from conveyor.cli import main

    for name in [k for k in os.environ if k.startswith("CONVEYOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", f"sqlite:///{tmp_path / 'conveyor.db'}")
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    assert exited.value.code == 2, (out, err)
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("conveyor: "), err
    assert says in err


def test_an_unreachable_database_is_one_line_not_a_traceback(cli):
    result = cli("--database-url", "postgresql://postgres@127.0.0.1:1/nowhere", "submit", "echo")
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "cannot reach the database" in result.stderr


# --- run and inspect ----------------------------------------------------------------------


def test_worker_burst_exits_0_when_nothing_is_due(cli):
    ok(cli("worker", "--burst"))  # a fresh database: nothing at all
    later = submitted_id(cli("submit", "echo", "--delay", "3600"))
    ok(cli("worker", "--burst"))  # only a job due in an hour
    assert as_json(cli("status", later, "--json"))["status"] == "scheduled"


def test_status_json_after_a_burst_worker_ran_the_job(cli):
    job_id = submitted_id(cli("submit", "echo", "-p", "message=done"))
    ok(cli("worker", "--burst", "--concurrency", "2"))
    job = as_json(cli("status", job_id, "--json"))
    assert set(job) >= JOB_FIELDS
    assert (job["status"], job["attempts"]) == ("succeeded", 1)
    assert job["result"] == {"message": "done", "data": {}}
    assert job["started_at"] and job["finished_at"]
    [execution] = job["executions"]
    assert set(execution) >= EXECUTION_FIELDS
    assert (execution["attempt"], execution["outcome"]) == (1, "succeeded")

    text = ok(cli("status", job_id))  # the human view names the same things
    assert job_id in text and "succeeded" in text


def test_jobs_json_pages_and_filters(cli):
    ids = [submitted_id(cli("submit", "echo", "-p", f"message=m{n}")) for n in range(3)]
    failing = submitted_id(cli("submit", "fail"))
    page = as_json(cli("jobs", "--json"))
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    assert [j["id"] for j in page["items"]] == [failing, *reversed(ids)]  # newest first
    assert all(set(j) >= JOB_FIELDS for j in page["items"])

    first = as_json(cli("jobs", "--json", "--limit", "3"))
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = as_json(cli("jobs", "--json", "--limit", "3", "--cursor", first["next_cursor"]))
    assert [j["id"] for j in rest["items"]] == [ids[0]] and rest["next_cursor"] is None

    echoes = as_json(cli("jobs", "--json", "--type", "echo"))["items"]
    assert sorted(j["id"] for j in echoes) == sorted(ids)
    ok(cli("worker", "--burst"))
    dead = as_json(cli("jobs", "--json", "--status", "dead"))["items"]
    assert [j["id"] for j in dead] == [failing]
    assert "dead" in ok(cli("jobs"))  # the table view


def test_handlers_json_lists_types_schemas_and_plugins(cli):
    handlers = as_json(cli("handlers", "--json"))
    assert isinstance(handlers, list)
    by_type = {h["type"]: h for h in handlers}
    assert all(set(h) >= HANDLER_FIELDS for h in handlers)
    echo = by_type["echo"]
    assert (echo["plugin"], echo["queue"], echo["max_attempts"]) == ("samples", "default", 5)
    assert echo["payload_schema"]["properties"]["message"]["type"] == "string"
    assert by_type["flaky"]["payload_schema"]["required"] == ["key"]
    assert "echo" in ok(cli("handlers"))


@pytest.mark.postgres
def test_submit_wait_exits_0_on_succeeded_and_1_on_dead(pg_cli, pg_env, procs):
    ok(pg_cli("migrate"))
    workers = procs(pg_env)
    worker = workers.worker("--concurrency", "2")

    good = pg_cli("submit", "echo", "-p", "message=waited", "--wait")
    assert JOB_ID.match(ok(good).strip())
    bad = pg_cli("submit", "fail", "-p", "reason=broken", "--wait", "--json")
    job = json.loads(ok(bad, code=1))
    assert (job["status"], job["error"]) == ("dead", "PermanentError: broken")
    assert [e["outcome"] for e in job["executions"]] == ["permanent_error"]

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0, workers.log_of(worker)


# --- act -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_migrate_creates_then_reports_the_schema_at_head(pg_cli):
    assert ok(pg_cli("migrate")).strip() == "schema upgraded to head"
    assert ok(pg_cli("migrate")).strip() == "schema already at head"
    assert as_json(pg_cli("jobs", "--json")) == {"items": [], "next_cursor": None}


@pytest.mark.postgres
def test_cancel_and_retry_on_postgres(pg_cli):
    ok(pg_cli("migrate"))
    job_id = submitted_id(pg_cli("submit", "echo", "--delay", "3600"))
    assert ok(pg_cli("cancel", job_id)).strip() == f"{job_id} cancelled"
    job = as_json(pg_cli("status", job_id, "--json"))
    assert (job["status"], job["error"]) == ("cancelled", "cancelled by user")
    assert "already cancelled" in refused(pg_cli("cancel", job_id))

    assert ok(pg_cli("retry", job_id)).strip() == f"{job_id} queued"
    ok(pg_cli("worker", "--burst"))
    assert as_json(pg_cli("status", job_id, "--json"))["status"] == "succeeded"
    assert "only dead or cancelled" in refused(pg_cli("retry", job_id))


@pytest.mark.postgres
def test_dead_letter_queue_list_requeue_purge_on_postgres(pg_cli):
    ok(pg_cli("migrate"))
    dead = [submitted_id(pg_cli("submit", "fail", "-p", f"reason=r{n}")) for n in range(2)]
    alive = submitted_id(pg_cli("submit", "echo"))
    ok(pg_cli("worker", "--burst"))

    listed = as_json(pg_cli("dlq", "list", "--json"))
    assert set(listed) == {"items", "next_cursor"}
    assert sorted(j["id"] for j in listed["items"]) == sorted(dead)

    assert ok(pg_cli("dlq", "requeue", dead[0])).strip() == "requeued 1 job(s)"
    assert as_json(pg_cli("status", dead[0], "--json"))["status"] == "queued"
    # --all takes what is dead now: the other one.
    assert ok(pg_cli("dlq", "requeue", "--all")).strip() == "requeued 1 job(s)"
    ok(pg_cli("worker", "--burst"))  # both fail again

    assert ok(pg_cli("dlq", "purge")).strip() == "purged 2 job(s)"
    left = as_json(pg_cli("jobs", "--json"))["items"]
    assert [(j["id"], j["status"]) for j in left] == [(alive, "succeeded")]


def test_prune_deletes_finished_jobs_older_than_the_cutoff(cli):
    finished = submitted_id(cli("submit", "echo"))
    ok(cli("worker", "--burst"))
    waiting = submitted_id(cli("submit", "echo", "--delay", "3600"))
    assert ok(cli("prune", "--older-than", "7d")).strip() == "pruned 0 job(s)"
    assert ok(cli("prune", "--older-than", "0s")).strip() == "pruned 1 job(s)"
    refused(cli("status", finished))
    assert as_json(cli("status", waiting, "--json"))["status"] == "scheduled"


# --- the demo and plugins --------------------------------------------------------------


def test_demo_runs_embedded_and_prints_what_happened(cli, tmp_path):
    result = cli("demo", "--dir", str(tmp_path / "demo"), timeout=120)
    out = ok(result)
    assert "What happened" in out
    assert "run order of the three echo jobs: high -> medium -> low" in out
    assert "dead" in out and "succeeded" in out
    assert (tmp_path / "demo" / "conveyor.db").exists()


def write_plugin(folder: Path, module: str, job_type: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(
        textwrap.dedent(f'''
        from pydantic import BaseModel

        import conveyor


        class Words(BaseModel):
            text: str


        @conveyor.handler({job_type!r}, payload=Words, queue="loud", max_attempts=2, timeout=9)
        def shout(payload: Words, ctx: conveyor.JobContext) -> dict:
            """Upper-cases its text."""
            return {{"text": payload.text.upper()}}


        @conveyor.hookimpl
        def conveyor_handlers():
            return [shout]
    ''')
    )


def test_a_plugin_named_in_conveyor_plugins_is_listed_and_runs(cli, tmp_path, sqlite_env):
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "shout_plugin", "shout")
    env = {
        "CONVEYOR_PLUGINS": "shout_plugin",
        "PYTHONPATH": f"{plugins}:{sqlite_env['PYTHONPATH']}",
    }
    handlers = {h["type"]: h for h in as_json(cli("handlers", "--json", extra_env=env))}
    shout = handlers["shout"]
    assert (shout["plugin"], shout["queue"], shout["max_attempts"], shout["timeout"]) == (
        "shout_plugin",
        "loud",
        2,
        9,
    )
    assert shout["description"] == "Upper-cases its text."
    assert shout["payload_schema"]["required"] == ["text"]

    job_id = submitted_id(cli("submit", "shout", "-p", "text=hey", extra_env=env))
    ok(cli("worker", "--burst", "--queue", "loud", extra_env=env))
    job = as_json(cli("status", job_id, "--json", extra_env=env))
    assert (job["status"], job["queue"], job["result"]) == ("succeeded", "loud", {"text": "HEY"})
    # Without the plugin the type is unknown, and saying so is bad input.
    assert "unknown job type 'shout'" in refused(cli("submit", "shout", "-p", "text=x"))


def test_a_duplicate_job_type_fails_at_start_up_naming_both_plugins(cli, tmp_path, sqlite_env):
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "first_plugin", "twin")
    write_plugin(plugins, "second_plugin", "twin")
    write_plugin(plugins, "echo_again", "echo")
    path = f"{plugins}:{sqlite_env['PYTHONPATH']}"

    both = {"CONVEYOR_PLUGINS": "first_plugin,second_plugin", "PYTHONPATH": path}
    line = refused(cli("handlers", extra_env=both))
    assert "'twin'" in line and "'first_plugin'" in line and "'second_plugin'" in line

    builtin = {"CONVEYOR_PLUGINS": "echo_again", "PYTHONPATH": path}
    line = refused(cli("worker", "--burst", extra_env=builtin))
    assert "'echo'" in line and "'samples'" in line and "'echo_again'" in line


def test_a_plugin_module_that_cannot_be_imported_is_one_line(cli):
    line = refused(cli("handlers", extra_env={"CONVEYOR_PLUGINS": "no_such_plugin_module"}))
    assert "no_such_plugin_module" in line
