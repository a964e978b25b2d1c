"""docker-compose.yml stays true to the code: every Conveyor command and option it uses is
one the CLI really has, and every CONVEYOR_ variable is one Conveyor reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from conveyor.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def conveyor_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("image", "").startswith("conveyor")
    }


def test_topology(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "redis",
        "postgres",
        "minio",
        "mailpit",
        "api",
        "worker",
        "prometheus",
        "migrate",
    }
    assert compose["services"]["worker"]["deploy"]["replicas"] >= 2


def test_every_command_parses_with_the_real_cli(compose: dict[str, Any]) -> None:
    group = typer.main.get_command(cli_app)
    services = conveyor_services(compose)
    assert set(services) >= {"api", "worker", "migrate"}
    for name, svc in services.items():
        argv = svc["command"]
        root = group.make_context("conveyor", list(argv), resilient_parsing=True)
        sub = group.get_command(root, argv[0])
        assert sub is not None, f"service {name}: `conveyor {argv[0]}` does not exist"
        sub.make_context(argv[0], list(argv[1:]), parent=root)  # raises on a bad option


def test_every_conveyor_variable_is_read_by_conveyor(compose: dict[str, Any]) -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "conveyor").rglob("*.py"))
    for name, svc in conveyor_services(compose).items():
        for var in svc.get("environment", {}):
            if var.startswith("CONVEYOR_"):
                assert re.search(rf'"{var}"', source), f"service {name}: {var} is never read"


def test_prometheus_scrapes_the_api_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [target] = config["scrape_configs"][0]["static_configs"][0]["targets"]
    api = compose["services"]["api"]["command"]
    assert target == f"api:{api[api.index('--port') + 1]}"
    assert "./deploy/prometheus.yml:" in compose["services"]["prometheus"]["volumes"][0]


def test_the_image_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["conveyor"]' in dockerfile
    assert "pip install" in dockerfile and "COPY src" in dockerfile
