"""What is left for Python's garbage collector: with it off, objects in a reference cycle stay alive, so a test can
tell what reference counting alone frees (at once) from what waits for a collection (in a busy process, the full
one, which runs rarely: shared/app.py `_tune_gc`)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def alive(kind: type) -> int:
    """How many objects of exactly this type the collector knows of."""
    return sum(1 for thing in gc.get_objects() if type(thing) is kind)


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """Earlier garbage collected, then no collection until the block ends."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
