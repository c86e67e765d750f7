"""docker-compose.yml, the Dockerfile and .env.example, checked as files: no Docker engine runs where tests run."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
import yaml

from shared.settings import ROOT, Settings
from tests.ops.gateway import CADDYFILE, adapt, server

APPS = ("auth", "ingest", "stream")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_compose_file_has_the_database_the_three_services_a_gateway_mail_and_the_dashboard(services: dict) -> None:
    # openapi: the API document, for the gateway; mailpit: where the mail goes; prometheus and grafana: the dashboard
    assert set(services) == {"mongo", *APPS, "gateway", "openapi", "mailpit", "prometheus", "grafana"}


@pytest.mark.parametrize("name", ["mongo", *APPS])
def test_every_service_but_the_gateway_has_a_healthcheck(services: dict, name: str) -> None:
    assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_mongo_is_a_pinned_major_started_as_a_replica_set_and_initiated_by_its_healthcheck(services: dict) -> None:
    mongo = services["mongo"]
    assert re.fullmatch(r"mongo:\d+\.\d+", mongo["image"])
    assert mongo["command"][mongo["command"].index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in mongo["command"]
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'mongo:27017'}]})" in probe
    assert "isWritablePrimary" in probe  # healthy once writes are possible, not merely once initiated


def test_the_database_lives_in_a_named_volume(services: dict) -> None:
    volumes = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["volumes"]
    mount, *_scripts = services["mongo"]["volumes"]
    volume, target = mount.split(":")
    assert (volume in volumes, target) == (True, "/data/db")


@pytest.mark.parametrize("name", APPS)
def test_each_service_is_the_one_image_running_its_app(services: dict, name: str) -> None:
    service = services[name]
    assert service["build"] == "."
    assert service["entrypoint"][0] == "uvicorn"
    assert service["command"] == [f"services.{name}.app:app"]
    assert (ROOT / "services" / name / "app.py").exists()


@pytest.mark.parametrize("name", APPS)
def test_each_service_listens_where_the_gateway_and_its_healthcheck_look(services: dict, name: str) -> None:
    entrypoint = services[name]["entrypoint"]
    assert entrypoint[entrypoint.index("--host") + 1] == "0.0.0.0"
    assert entrypoint[entrypoint.index("--port") + 1] == "8000"
    assert "http://127.0.0.1:8000/readyz" in " ".join(services[name]["healthcheck"]["test"])


@pytest.mark.parametrize("name", APPS)
def test_each_service_believes_forwarded_headers_from_the_gateways_fixed_address_only(
    services: dict, name: str
) -> None:
    """The client's address, not the gateway's, for the login limits; never a client's own claim to one, and not
    that of another container on the network either (a /24 trusted every one of them)."""
    assert "--no-proxy-headers" in services[name]["entrypoint"]  # uvicorn's own would believe 127.0.0.1
    (network,) = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["networks"]["default"]["ipam"]["config"]
    gateway = ipaddress.ip_address(services["gateway"]["networks"]["default"]["ipv4_address"])
    assert services[name]["environment"]["TRUSTED_PROXIES"] == str(gateway)
    assert gateway in ipaddress.ip_network(network["subnet"])
    assert gateway not in ipaddress.ip_network(network["ip_range"])  # no other container is given it


def test_the_gateway_is_told_of_front_proxies_only_by_the_operator(services: dict) -> None:
    """FRONT_PROXIES from .env, empty unless set; Caddy reads it in deploy/Caddyfile (tests/ops/test_gateway.py)."""
    assert services["gateway"]["environment"]["FRONT_PROXIES"] == "${FRONT_PROXIES:-}"
    assert "\nFRONT_PROXIES=\n" in (ROOT / ".env.example").read_text()
    assert "{$FRONT_PROXIES}" in CADDYFILE.read_text()


@pytest.mark.parametrize("name", APPS)
def test_each_service_reaches_the_replica_set_as_its_own_user_with_secrets_from_env(services: dict, name: str) -> None:
    env = services[name]["environment"]
    password = f"MONGO_{name.upper()}_PASSWORD"
    assert env["MONGO_URL"] == (
        f"mongodb://gossip_{name}:${{{password}:?set it in .env}}@mongo:27017/?replicaSet=rs0&authSource=gossip"
    )
    assert services["mongo"]["environment"][f"MONGO_INITDB_{name.upper()}_PASSWORD"].startswith(f"${{{password}:?")
    assert not any("ROOT" in value for value in env.values())  # the root user is MongoDB's init's alone
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # compose refuses to start without one
    assert env["LOG_FORMAT"] == "json"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"  # from .env; empty: no traces


def test_mongo_runs_with_access_control_and_a_root_user_from_env(services: dict) -> None:
    """The image's entrypoint turns on --auth once a root user is given; a replica set with access control needs a
    key its members share (deploy/mongo/start.sh makes it), which the init's own server goes without."""
    mongo = services["mongo"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_USERNAME"] == "root"
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_ROOT_PASSWORD:?")
    assert mongo["entrypoint"] == ["/deploy/mongo/start.sh"]
    assert mongo["command"][0] == "mongod" and mongo["command"][mongo["command"].index("--keyFile") + 1] == (
        "/tmp/replica-key"  # noqa: S108 (inside the container, written by start.sh with mode 400)
    )
    start = (ROOT / "deploy" / "mongo" / "start.sh").read_text()
    assert "> /tmp/replica-key" in start and "exec docker-entrypoint.sh" in start
    assert "./deploy/mongo/start.sh:/deploy/mongo/start.sh:ro" in mongo["volumes"]
    assert "./deploy/mongo/users.js:/docker-entrypoint-initdb.d/users.js:ro" in mongo["volumes"]
    assert (ROOT / "deploy" / "mongo" / "start.sh").stat().st_mode & 0o111  # the entrypoint runs it


def test_each_service_user_may_read_and_write_gossips_database_and_nothing_else(services: dict) -> None:
    """deploy/mongo/users.js, as MongoDB's init runs it: one user per service, with the password compose gives it."""
    script = (ROOT / "deploy" / "mongo" / "users.js").read_text()
    users = dict(re.findall(r'^\s+(gossip_\w+): "(MONGO_INITDB_\w+)",$', script, re.MULTILINE))
    assert users == {f"gossip_{name}": f"MONGO_INITDB_{name.upper()}_PASSWORD" for name in APPS}
    assert set(users.values()) <= set(services["mongo"]["environment"])
    assert re.findall(r"roles: (\[.*?\])", script) == ['[{ role: "readWrite", db: "gossip" }]']
    assert 'db.getSiblingDB("gossip")' in script and script.count("createUser") == 1


def test_the_healthcheck_uses_root_only_to_initiate_the_replica_set(services: dict) -> None:
    probe = " ".join(services["mongo"]["healthcheck"]["test"])
    before, _, after = probe.partition("rs.initiate")
    assert "if (!db.hello().setName) {" in before and "MONGO_INITDB_ROOT_PASSWORD" in before
    assert "auth(" not in after


@pytest.mark.parametrize("name", [*APPS, "gateway"])
def test_services_start_once_what_they_need_is_healthy(services: dict, name: str) -> None:
    needs = {"gateway": set(APPS)}.get(name, {"mongo"})
    written = {"openapi": {"condition": "service_completed_successfully"}} if name == "gateway" else {}
    assert services[name]["depends_on"] == {need: {"condition": "service_healthy"} for need in needs} | written


def test_the_api_document_is_written_from_the_image_into_a_volume_the_gateway_reads(services: dict) -> None:
    """What the gateway serves at /api/openapi.json (tests/ops/test_gateway.py runs the same command and Caddy)."""
    writer, gateway = services["openapi"], services["gateway"]
    assert (writer["build"], writer["entrypoint"][:3]) == (".", ["python", "-m", "services.all.openapi"])
    assert writer["volumes"] == ["openapi:/srv/openapi"] and "openapi:/srv/openapi:ro" in gateway["volumes"]
    assert writer["restart"] == "no"  # it exits once written
    assert "install -d -o gossip /srv/openapi" in (ROOT / "Dockerfile").read_text()  # the volume starts writable


def test_only_the_gateway_mail_and_the_dashboard_publish_ports_and_only_on_loopback(services: dict) -> None:
    assert {name: service.get("ports") for name, service in services.items() if "ports" in service} == {
        "gateway": ["127.0.0.1:8000:8000"],
        "mailpit": ["127.0.0.1:8025:8025"],
        "prometheus": ["127.0.0.1:9090:9090"],
        "grafana": ["127.0.0.1:3000:3000"],
    }


@pytest.mark.parametrize("name", APPS)
def test_mail_goes_to_mailpits_smtp_port_with_links_to_the_gateway(services: dict, name: str) -> None:
    """By default; .env may name a real mail server and the site's own address instead."""
    env = services[name]["environment"]
    assert re.fullmatch(r"axllent/mailpit:v\d+\.\d+", services["mailpit"]["image"])
    defaults = {key: re.fullmatch(rf"\$\{{{key}:-(.+)\}}", env[key]).group(1) for key in ("SMTP_URL", "PUBLIC_URL")}
    assert defaults == {"SMTP_URL": "smtp://mailpit:1025", "PUBLIC_URL": "http://127.0.0.1:8000"}
    assert Settings.from_env({"SECRET_KEY": "s", **defaults}).smtp_url == "smtp://mailpit:1025"  # values it accepts


def test_nothing_pins_a_container_name_so_the_stream_service_scales(services: dict) -> None:
    assert [name for name, service in services.items() if "container_name" in service] == []


def test_the_gateway_is_caddy_running_deploy_caddyfile_on_the_published_port(services: dict) -> None:
    gateway = services["gateway"]
    assert gateway["image"].startswith("caddy:2")
    assert gateway["volumes"][0] == f"./{CADDYFILE.relative_to(ROOT)}:/etc/caddy/Caddyfile:ro"
    assert server(adapt())["listen"] == [":8000"]


def test_the_image_is_python_311_slim_and_runs_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)$", dockerfile, re.MULTILINE) == ["python:3.11-slim"]
    (user,) = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user not in ("root", "0")


def test_the_secret_stays_out_of_git_and_of_the_image() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    example = (ROOT / ".env.example").read_text()
    for secret in ("SECRET_KEY", "MONGO_ROOT_PASSWORD", *(f"MONGO_{name.upper()}_PASSWORD" for name in APPS)):
        assert f"\n{secret}=\n" in f"\n{example}"  # empty: compose stops until one is set
