"""`python -m services.all.openapi FILE` writes the API document of all three services, the one the all-in-one app
serves, to FILE. In docker-compose the gateway serves that file at /api/openapi.json: no single service there has
the other services' operations to serve it."""

from __future__ import annotations

import sys
from pathlib import Path

from services.all.app import app
from shared.openapi import encoded


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m services.all.openapi FILE\n")
        raise SystemExit(2)
    Path(argv[1]).write_bytes(encoded("gossip", app.routes))


if __name__ == "__main__":
    main(sys.argv)
