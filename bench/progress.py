"""Progress while `make bench` runs, on stderr (the result lines go to stdout): a full run takes minutes."""

from __future__ import annotations

import sys
import time

_START = time.monotonic()


def step(*parts: str) -> None:
    """`[m:ss] scenario · system · what it is doing now`."""
    elapsed = int(time.monotonic() - _START)
    print(f"[{elapsed // 60}:{elapsed % 60:02d}] {' · '.join(parts)}", file=sys.stderr, flush=True)
