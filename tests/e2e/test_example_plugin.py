"""examples/greeting-plugin installs with pip and Conveyor finds it through its entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "greeting-plugin"


def test_the_example_plugin_installs_with_pip_and_registers_through_its_entry_point(
    tmp_path, cli, sqlite_env
):
    source = tmp_path / "greeting-plugin"
    shutil.copytree(EXAMPLE, source)  # setuptools builds in place: keep the repository clean
    site = tmp_path / "site"
    # A real pip install (wheel build, dist-info with entry_points.txt), offline and into a
    # folder of its own rather than the project's environment.
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pip.returncode == 0, pip.stderr
    [dist_info] = site.glob("conveyor_greeting-*.dist-info")
    assert "greeting = conveyor_greeting.plugin" in (dist_info / "entry_points.txt").read_text()

    # Found through the entry point alone: CONVEYOR_PLUGINS is not set.
    assert "CONVEYOR_PLUGINS" not in sqlite_env
    env = {"PYTHONPATH": os.pathsep.join([str(site), sqlite_env["PYTHONPATH"]])}
    handlers = json.loads(cli("handlers", "--json", extra_env=env).stdout)
    [greet] = [h for h in handlers if h["type"] == "greet"]
    assert (greet["plugin"], greet["queue"], greet["max_attempts"], greet["timeout"]) == (
        "greeting",
        "default",
        3,
        30,
    )
    assert greet["payload_schema"]["required"] == ["name"]

    guestbook = tmp_path / "guests.txt"
    ids = [
        cli(
            "submit", "greet", "-p", "name=Ada", "-p", f"guestbook={guestbook}", extra_env=env
        ).stdout.strip()
        for _ in range(2)
    ]
    run = cli("worker", "--burst", extra_env=env)
    assert run.returncode == 0, run.stderr
    listed = json.loads(cli("jobs", "--json", "--type", "greet", extra_env=env).stdout)
    results = sorted(listed["items"], key=lambda job: ids.index(job["id"]))
    assert [r["status"] for r in results] == ["succeeded", "succeeded"]
    # The two jobs may run side by side: whichever reached the ledger first signed, once.
    assert sorted(r["result"]["signed"] for r in results) == [False, True]
    assert all(
        r["result"]["greeted"] == "Ada" and r["result"]["message"] == "Hello, Ada!"
        for r in results
    )
    assert guestbook.read_text() == "Hello, Ada!\n"

    # The payload model guards submission.
    bad = cli("submit", "greet", "-p", "name=", extra_env=env)
    assert bad.returncode == 2 and "invalid payload for 'greet'" in bad.stderr
