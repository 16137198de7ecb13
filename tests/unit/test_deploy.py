"""deploy/: the compose file, the proxy, Prometheus and Grafana agree with each other and with fap.

Docker does not run here, so these check what can be checked without it: the files parse, every
name one of them uses is defined, the processors' network is closed, and every fap command line
parses with the flags fap really has.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
import yaml

from fap.cli.app import app
from fap.server.blobs import S3Location, parse_storage_url

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's ``${NAME:-default}``, with the defaults (no .env here); ``$$`` is one ``$``."""
    if isinstance(value, str):
        text = _VARIABLE.sub(lambda m: os.environ.get(m[1]) or m[2] or "", value)
        return text.replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, dict):
        return {interpolate(key): interpolate(item) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return interpolate(loaded)


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def networks_of(service: dict[str, Any]) -> set[str]:
    return set(service.get("networks", []))


def fap_command(service: dict[str, Any]) -> list[str] | None:
    command = service.get("command")
    if isinstance(command, list) and command and command[0] == "fap":
        return [str(part) for part in command[1:]]
    return None


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def servers(compose: dict[str, Any]) -> dict[str, list[str]]:
    found = {}
    for name, service in services(compose).items():
        argv = fap_command(service)
        if argv and argv[0] == "serve":
            found[name] = argv
    return found


def test_every_name_the_compose_file_uses_is_defined(compose: dict[str, Any]) -> None:
    declared_networks = set(compose["networks"])
    declared_volumes = set(compose["volumes"])
    declared_configs = set(compose["configs"])
    for name, service in services(compose).items():
        assert networks_of(service) <= declared_networks, name
        assert networks_of(service) or service.get("network_mode") == "none", name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared_volumes, (name, source)
        for config in service.get("configs", []):
            assert config["source"] in declared_configs, (name, config)
        assert set(service.get("depends_on", [])) <= set(services(compose)), name
    for name, config in compose["configs"].items():
        if "file" in config:
            assert (DEPLOY / config["file"]).is_file(), name
    used = {n for s in services(compose).values() for n in networks_of(s)}
    assert used == declared_networks


def test_processors_sit_on_an_internal_network_that_reaches_only_the_proxy(
    compose: dict[str, Any],
) -> None:
    processor = services(compose)["processor"]
    assert networks_of(processor) == {"processors"}
    assert compose["networks"]["processors"]["internal"] is True
    on_it = {name for name, s in services(compose).items() if "processors" in networks_of(s)}
    assert on_it == {"processor", "proxy"}
    assert "ports" not in processor  # nothing listens
    # The database and the object store are on an internal network of their own.
    assert compose["networks"]["backend"]["internal"] is True
    assert not networks_of(services(compose)["postgres"]) & networks_of(processor)
    assert not networks_of(services(compose)["s3"]) & networks_of(processor)


def test_every_fap_command_line_parses_with_the_flags_fap_has(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("FAP_")]:
        monkeypatch.delenv(name)
    fap = typer.main.get_command(app)
    assert isinstance(fap, typer.core.TyperGroup)
    command_lines = [argv for s in services(compose).values() if (argv := fap_command(s))]
    assert {argv[0] for argv in command_lines} == {"serve", "work"}
    for argv in command_lines:
        command = fap.commands[argv[0]]
        # Parsing checks every flag exists and every value converts; nothing runs.
        with command.make_context(argv[0], argv[1:]) as context:
            assert context.params


def test_the_replicas_share_one_database_and_a_bucket_everyone_reaches(
    compose: dict[str, Any],
) -> None:
    replicas = servers(compose)
    assert len(replicas) >= 2
    databases = {option(argv, "--db") for argv in replicas.values()}
    storages = {option(argv, "--storage") for argv in replicas.values()}
    assert len(databases) == 1 and len(storages) == 1
    (database,) = databases
    assert database.startswith("postgresql+asyncpg://") and ":" not in database.split("@")[0][22:]
    location = parse_storage_url(storages.pop())
    assert isinstance(location, S3Location)
    assert location.endpoint is not None
    host, port = location.endpoint.removeprefix("http://").split(":")
    # Presigned URLs name the endpoint: the proxy answers to it where servers and processors are.
    proxy = services(compose)["proxy"]
    for network in ("backend", "processors"):
        assert host in proxy["networks"][network]["aliases"]
    assert f"{port}:{port}" in proxy["ports"]
    assert f":{port} {{" in (DEPLOY / "Caddyfile").read_text()


def test_processors_name_the_proxy_and_a_port_it_serves_the_api_on(
    compose: dict[str, Any],
) -> None:
    argv = fap_command(services(compose)["processor"])
    assert argv is not None and argv[0] == "work"
    server = option(argv, "--server")
    assert server == "http://proxy:8080"
    assert ":8080 {" in (DEPLOY / "Caddyfile").read_text()
    assert services(compose)["processor"]["environment"]["FAP_TOKEN_FILE"].startswith("/run/fap/")


def test_the_proxy_spreads_the_api_over_every_replica(compose: dict[str, Any]) -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    upstreams = re.search(r"reverse_proxy ((?:\S+:\d+ ?)+) \{", caddyfile)
    assert upstreams is not None
    expected = {f"{name}:{option(argv, '--port')}" for name, argv in servers(compose).items()}
    assert set(upstreams[1].split()) == expected
    assert "respond /metrics 404" in caddyfile


def test_prometheus_scrapes_every_replica_and_loads_its_rules(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {
        f"{name}:{option(argv, '--port')}" for name, argv in servers(compose).items()
    }
    prometheus = services(compose)["prometheus"]
    mounted = {c["target"] for c in prometheus["configs"]}
    assert set(config["rule_files"]) <= mounted
    # Prometheus shares a network with the replicas it scrapes.
    for name in servers(compose):
        assert networks_of(prometheus) & networks_of(services(compose)[name])
    rules = yaml.safe_load((DEPLOY / "rules.yml").read_text())
    assert all("expr" in rule for group in rules["groups"] for rule in group["rules"])


def test_grafana_gets_the_datasource_and_dashboard_it_names(compose: dict[str, Any]) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "fap.json").read_text())
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 8
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/fap.yaml").read_text())
    folder = providers["providers"][0]["options"]["path"]
    mounted = {c["source"]: c["target"] for c in services(compose)["grafana"]["configs"]}
    assert mounted["grafana-dashboard"] == f"{folder}/fap.json"
    assert compose["configs"]["grafana-dashboard"]["file"] == "./grafana/fap.json"


def test_the_image_copies_only_what_the_build_context_lets_through() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, flags=re.MULTILINE)
    sources = {source for line in copies for source in line.split()}
    assert sources == allowed
    for source in sources:
        assert (DEPLOY.parent / source).exists(), source
    assert re.search(r"uv sync --locked --no-dev --no-editable", dockerfile)
