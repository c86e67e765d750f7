"""The operators' dashboard of docker-compose.yml, checked with the real tools where no Docker engine runs: Prometheus'
own promtool for its config and for every panel's query, and every metric a panel names against what a live server
really exports at /metrics. promtool comes from Debian's `prometheus` package, which .ci/run installs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import ROOT

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


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None and os.environ.get("CI"):
        pytest.fail("CI runs without promtool: .ci/run should have installed Debian's prometheus package")
    if tool is None:
        pytest.skip("promtool is not installed here (Debian's `prometheus` package; .ci/run installs it)")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


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
    rules = []
    for number, query in enumerate(queries()):
        for variable, value in GRAFANA_RANGES.items():
            query = query.replace(variable, value)
        rules.append({"record": f"gossip:panel_{number}", "expr": query})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_a_panel_names_is_one_the_services_export(server: str) -> None:
    """Scraped from a live server, whose process holds every service's metrics; and each thing the dashboard must
    show has its panel."""
    text = httpx.get(f"{server}/metrics", timeout=5).text
    exported = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    named = {name for query in queries() for name in METRIC.findall(query)}
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    assert {what: metric in named for what, metric in SHOWN.items()} == dict.fromkeys(SHOWN, True)
