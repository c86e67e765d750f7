"""What the auth service holds for its lifetime: the core every service has, and where its mail goes."""

from __future__ import annotations

from services.auth.mailer import Mailer
from shared.state import Core


class Auth(Core):
    mailer: Mailer
