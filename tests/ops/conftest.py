"""Services as separate processes, as docker-compose runs them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from dev.processes import ServiceProcess
from shared.settings import Settings


@pytest.fixture
def launch(settings: Settings) -> Iterator[Callable[..., ServiceProcess]]:
    """`launch(name, **env)` starts `services.<name>.app` as its own uvicorn process with JSON logs and `env` added
    to its environment, waited for on /readyz; every process started is stopped at the end of the test, whether it
    passed or not."""
    with contextlib.ExitStack() as stack:
        yield lambda name, **env: stack.enter_context(
            ServiceProcess(f"services.{name}.app", settings, LOG_FORMAT="json", **env)
        )
