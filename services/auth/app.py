"""The auth service: accounts, sessions, the show catalogue and follows, tokens, push, email, preferences, your
data and the operator console. Each subject's endpoints and routes are in services/auth/endpoints/; this joins
them with what the service runs beside them."""

from __future__ import annotations

from services.auth.accounts import reserving
from services.auth.endpoints import accounts, admin, email, home, own_data, preferences, push, shows, tokens
from services.auth.mailer import mailing
from services.auth.passwords import hashing
from services.auth.scheduler import scheduling
from services.auth.throttle import sweeping
from shared.app import Extension, create_app
from shared.expiry import expiring

routes = [
    *accounts.routes,
    *shows.routes,
    *home.routes,
    *tokens.routes,
    *push.routes,
    *email.routes,
    *preferences.routes,
    *own_data.routes,
    *admin.routes,
]
extensions: list[Extension] = [
    reserving,
    hashing,
    sweeping,
    mailing,
    scheduling,
    expiring("sessions", "sends", "refusals"),
]
app = create_app("auth", routes, extensions=extensions)
