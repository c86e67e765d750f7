"""The operators' dashboard of docker-compose.yml, checked with the real tools where no Docker engine runs: Prometheus'
own promtool for its config and for every panel's query, Grafana's own dashboard model (its foundation SDK's types,
tests/ops/grafana.py) for the dashboard, and every metric a panel names against what a live server really exports
at /metrics. promtool comes from Debian's `prometheus` package, which .ci/run installs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dev.processes import ChildProcess
from shared.settings import ROOT
from tests.ops import grafana
from tests.support.accounts import registered
from tests.support.http import async_client, get
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until

APPS = ("auth", "ingest", "stream")
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gossip.json"
METRIC = re.compile(r"\bgossip_[a-z_]+\b")
# What the issue asks the dashboard to show, by the metric that shows it.
SHOWN = {
    "feeds": "gossip_stream_connections",
    "deliveries per second": "gossip_stream_events_delivered_total",
    "publish-to-delivery latency": "gossip_delivery_latency_seconds_bucket",
    "refusals": "gossip_refusals_total",
    "rejected documents": "gossip_stream_rejected_documents_total",
    "change-stream lag": "gossip_stream_change_lag_seconds",
}
GRAFANA_RANGES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}  # what Grafana puts in their place


def installed(name: str) -> str:
    """A tool of Debian's prometheus package: skipped where it is missing, a failure in CI."""
    tool = shutil.which(name)
    if tool is None and os.environ.get("CI"):
        pytest.fail(f"CI runs without {name}: .ci/run should have installed Debian's prometheus package")
    if tool is None:
        pytest.skip(f"{name} is not installed here (Debian's `prometheus` package; .ci/run installs it)")
    return tool


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([installed("promtool"), *args], capture_output=True, text=True, timeout=60, check=False)


def in_grafana_terms(query: str) -> str:
    """The query as Grafana sends it to Prometheus, its range variables filled in."""
    for variable, value in GRAFANA_RANGES.items():
        query = query.replace(variable, value)
    return query


def yaml_of(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


def queries() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def compose() -> dict[str, Any]:
    return dict(yaml_of(ROOT / "docker-compose.yml")["services"])


def test_promtool_accepts_the_prometheus_config() -> None:
    checked = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_finds_every_replica_of_every_service_by_dns_where_it_listens() -> None:
    """`--scale stream=3` gives three A records for `stream` on the compose network, so three scraped instances."""
    jobs = {job["job_name"]: job for job in yaml_of(DEPLOY / "prometheus.yml")["scrape_configs"]}
    assert set(jobs) == set(APPS)
    services = compose()
    for name, job in jobs.items():
        (found,) = job["dns_sd_configs"]
        entrypoint = services[name]["entrypoint"]
        assert (found["names"], found["type"], found["port"]) == (
            [name],
            "A",
            int(entrypoint[entrypoint.index("--port") + 1]),
        )
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_and_grafana_run_the_files_of_deploy() -> None:
    services = compose()
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    (provider,) = yaml_of(DEPLOY / "grafana" / "provisioning" / "dashboards" / "gossip.yml")["providers"]
    assert (provider["type"], provider["options"]["path"]) == ("file", "/var/lib/grafana/dashboards")
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"/var/lib/grafana/dashboards/{DASHBOARD.name}"


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    (source,) = yaml_of(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")  # the compose service
    wanted = {"type": "prometheus", "uid": source["uid"]}
    for panel in panels():
        assert panel["datasource"] == wanted, panel["title"]
        assert all(target["datasource"] == wanted for target in panel["targets"]), panel["title"]


def test_grafanas_own_dashboard_model_holds_the_dashboard_as_written() -> None:
    assert grafana.problems(json.loads(DASHBOARD.read_text())) == []


def _first_panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    panel: dict[str, Any] = dashboard["panels"][0]
    return panel


MISTAKES = {
    "a misspelt key": (lambda d: _first_panel(d)["options"].update(legnd={}), "options.legnd: not in Grafana's model"),
    "a wrong type": (lambda d: _first_panel(d)["gridPos"].update(w="12"), "grid_pos.w: '12' is not of type int"),
    "a value not allowed": (
        lambda d: _first_panel(d)["options"]["tooltip"].update(mode="everything"),
        "'everything' is not one of",
    ),
    "a query's wrong value": (lambda d: _first_panel(d)["targets"][0].update(format="csv"), "'csv' is not one of"),
    "an unknown panel": (lambda d: _first_panel(d).update(type="timeserie"), "no panel plugin 'timeserie'"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_grafanas_model_finds_a_mistake_in_a_copy_of_the_dashboard(mistake: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    change, said = MISTAKES[mistake]
    change(dashboard)
    (found,) = grafana.problems(dashboard)
    assert said in found


def test_the_dashboard_has_the_shape_grafana_loads() -> None:
    """Grafana's dashboard model, as far as a provisioned file needs it: a uid and title, unique panel ids, each panel
    placed on the 24-column grid without overlapping another, and each query with its own refId."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert isinstance(dashboard["uid"], str) and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels():
        assert panel["type"] == "timeseries" and panel["title"] and panel["targets"]
        place = panel["gridPos"]
        assert place["x"] >= 0 and place["x"] + place["w"] <= 24 and place["h"] > 0
        mine = {
            (x, y)
            for x in range(place["x"], place["x"] + place["w"])
            for y in range(place["y"], place["y"] + place["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(target["expr"] for target in panel["targets"])


def test_every_panel_query_is_promql_that_promtool_accepts(tmp_path: Path) -> None:
    """Each query as a recording rule, Grafana's range variables filled in as Grafana fills them."""
    rules = [
        {"record": f"gossip:panel_{number}", "expr": in_grafana_terms(query)} for number, query in enumerate(queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_a_panel_names_is_one_the_services_export(server: str) -> None:
    """Scraped from a live server, whose process holds every service's metrics; and each thing the dashboard must
    show has its panel."""
    text = get(f"{server}/metrics", timeout=5).text
    exported = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    named = {name for query in queries() for name in METRIC.findall(query)}
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    assert {what: metric in named for what, metric in SHOWN.items()} == dict.fromkeys(SHOWN, True)


async def test_every_panel_query_answers_in_a_real_prometheus_scraping_a_live_server(
    server: str, tmp_path: Path
) -> None:
    """Prometheus itself, on loopback, scraping the live server every second as deploy/prometheus.yml's jobs do
    (a static target in place of the compose network's DNS): every panel's query returns series, and the latency's
    quantiles a number once an update has been delivered."""
    config = yaml_of(DEPLOY / "prometheus.yml")
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    target = server.removeprefix("http://")
    config["scrape_configs"] = [{"job_name": "stream", "static_configs": [{"targets": [target]}]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    command = [installed("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
               f"--storage.tsdb.path={tmp_path / 'data'}", "--web.listen-address=127.0.0.1:0"]  # fmt: skip
    with ChildProcess(command, {}, ready_path="/-/ready") as prometheus:
        async with async_client(base_url=prometheus.url, timeout=5) as api:

            async def answer(query: str) -> list[dict[str, Any]]:
                response = await api.get("/api/v1/query", params={"query": in_grafana_terms(query)})
                assert response.status_code == 200, response.text
                return list(response.json()["data"]["result"])

            await wait_until(lambda: answer("up == 1"), timeout=15)
            async with registered(server, "alice") as alice, events(alice, "/events/all") as feed:
                sent = [await publish(alice, "flash", f"scraped {n}") for n in range(3)]
                assert await feed.updates(3) == sent
            latency = next(query for query in queries() if "gossip_delivery_latency_seconds" in query)

            async def quantile() -> bool:
                found = await answer(latency)
                return bool(found) and found[0]["value"][1] not in ("NaN", "+Inf")

            await wait_until(quantile, timeout=15)
            for query in queries():
                assert await answer(query), f"no series: {query}"
