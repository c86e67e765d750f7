"""What the auth service holds for its lifetime: the core every service has, its password hashing, and where its
mail goes."""

from __future__ import annotations

from starlette.requests import Request

from services.auth.mailer import Mailer
from services.auth.passwords import Passwords
from shared.rulesfile import ReservedNames
from shared.state import Core


class Auth(Core):
    passwords: Passwords  # Argon2id on a bounded pool of its own
    mailer: Mailer
    push_key: str  # the public half of the key that signs pushes, as browsers subscribe with it
    reserved_names: ReservedNames  # the watch rules' names, as username_key has them: nobody may register one


AuthRequest = Request[Auth]
