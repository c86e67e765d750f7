"""How busy the machine was with other work while the bench ran: on a shared machine, the figures need it beside."""

from __future__ import annotations

import os
import resource
import time

import psutil


def _machine_busy() -> float:
    """CPU seconds every core has spent on anything since boot."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)


def _ours() -> float:
    """CPU seconds of this process and of every child it has waited for (the services, nginx, the database)."""
    spent = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        spent += usage.ru_utime + usage.ru_stime
    return spent


class Load:
    """Started before the run; `said()` once every child has exited."""

    def __init__(self) -> None:
        self._wall, self._busy, self._ours = time.monotonic(), _machine_busy(), _ours()

    def said(self) -> str:
        wall = time.monotonic() - self._wall
        others = (_machine_busy() - self._busy) - (_ours() - self._ours)
        cores = os.cpu_count() or 1
        average = max(0.0, others) / wall
        return (
            f"other processes kept {average:.2f} of {cores} cores busy on average ({average / cores:.0%}); "
            f"load average at the end {os.getloadavg()[0]:.2f}"
        )
