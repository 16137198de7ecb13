"""Roles in an organisation, weakest first, and the plan names: shared by server and CLI."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ("ROLES", "Role", "TokenRole", "at_least", "role_named", "weaker")

Role = Literal["viewer", "member", "admin", "owner"]
# An API token acts as its user, capped at its role; a processor token only runs jobs.
TokenRole = Literal["viewer", "member", "admin", "owner", "processor"]

ROLES: tuple[Role, ...] = get_args(Role)


def at_least(role: str, needed: Role) -> bool:
    """Whether ``role`` holds every right of ``needed`` (an unknown role holds none)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def weaker(first: Role, second: Role) -> Role:
    """The lesser of two roles: what a capped token may do."""
    return first if ROLES.index(first) <= ROLES.index(second) else second


_BY_NAME: dict[str, Role] = {role: role for role in ROLES}


def role_named(name: str) -> Role:
    """The role of that name; ValueError for any other text."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"{name!r} is no role; roles are {', '.join(ROLES)}.") from None
