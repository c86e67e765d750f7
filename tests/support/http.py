"""HTTP clients for the tests, all on one TLS context: httpx loads its CA bundle again for every client (and every
`httpx.get`) that is not given one, tens of milliseconds of CPU each, and the suite makes thousands. A client that
trusts another root (the gateway's own CA) names its own `verify`."""

from __future__ import annotations

from typing import Any

import httpx

TLS = httpx.create_ssl_context()


def async_client(**options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(**{"verify": TLS, **options})


def sync_client(**options: Any) -> httpx.Client:
    return httpx.Client(**{"verify": TLS, **options})


def async_transport(**options: Any) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(**{"verify": TLS, **options})


def get(url: str, **options: Any) -> httpx.Response:
    return httpx.get(url, **{"verify": TLS, **options})
