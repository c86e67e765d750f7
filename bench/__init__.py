"""`make bench`: the load generator, its scenarios and the report."""

try:
    from uvloop import new_event_loop
except ImportError:  # uvloop comes with uvicorn[standard] except where it cannot build (Windows)
    from asyncio import new_event_loop

__all__ = ["new_event_loop"]
