"""`make bench`: the load generator, its scenarios and the report."""

import asyncio
from collections.abc import Callable

new_event_loop: Callable[[], asyncio.AbstractEventLoop]
try:
    from uvloop import new_event_loop
except ImportError:  # uvloop comes with uvicorn[standard] except where it cannot build (Windows)
    new_event_loop = asyncio.new_event_loop

__all__ = ["new_event_loop"]
