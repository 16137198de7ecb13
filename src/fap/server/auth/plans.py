"""Plans: the quotas an organisation gets, checked when an upload is created.

``local`` is the embedded default's organisation: no quota but the server's largest file. An
organisation made by a signed-in user gets the server's ``default_plan``. Every plan's largest
file is capped by the server's own ``max_file_size``.
"""

from __future__ import annotations

from fap.config import ServerSettings
from fap.errors import ConfigError
from fap.server.store import Quotas

__all__ = ("PLANS", "quotas_of")

GiB = 1 << 30
TiB = 1 << 40

# (largest file, bytes per calendar month (UTC), uploads in flight at once); None: no limit.
PLANS: dict[str, tuple[int | None, int | None, int | None]] = {
    "local": (None, None, None),
    "free": (1 * GiB, 10 * GiB, 4),
    "team": (64 * GiB, 2 * TiB, 64),
    "enterprise": (None, None, None),
}


def quotas_of(plan: str, settings: ServerSettings) -> Quotas:
    try:
        largest, monthly, concurrent = PLANS[plan]
    except KeyError:
        raise ConfigError(f"There is no plan {plan!r}; plans are {', '.join(PLANS)}.") from None
    cap = settings.max_file_size
    return Quotas(plan, cap if largest is None else min(largest, cap), monthly, concurrent)
