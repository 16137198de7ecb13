"""The one permission table: what each role may do, and what each route needs.

Every route under ``/v1`` declares ``opt=needs(Permission.X)``; the guard grants it when the
caller's role in the organisation the request acts in holds X. A route that declares nothing
needs READ. The permission matrix test is generated from this table and the app's routes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from fap.api.roles import ROLES, Role

__all__ = ("NEEDS", "ROLE_PERMISSIONS", "Permission", "granted", "needs", "weakest_role")

NEEDS = "permission"


class Permission(enum.StrEnum):
    # Any user, in no organisation in particular: who am I, my devices, my organisations.
    SIGNED_IN = "signed_in"
    READ = "read"  # uploads, results and status of the organisation
    UPLOAD = "upload"  # add files; make API tokens for oneself, up to one's own role
    MANAGE_MEMBERS = "manage_members"  # invite, change roles, remove; see every token
    CONFIGURE = "configure"  # who may join by signing in (issuers, domains)
    READ_AUDIT = "read_audit"
    DELETE_ORG = "delete_org"
    PROCESS = "process"  # lease and complete jobs: processor tokens, and nothing else


_GRANTS: dict[Role, frozenset[Permission]] = {
    "viewer": frozenset({Permission.SIGNED_IN, Permission.READ}),
    "member": frozenset({Permission.UPLOAD}),
    "admin": frozenset({Permission.MANAGE_MEMBERS, Permission.CONFIGURE, Permission.READ_AUDIT}),
    "owner": frozenset({Permission.DELETE_ORG}),
}


def _cumulative() -> Mapping[Role, frozenset[Permission]]:
    """Each role holds its own grants and every weaker role's."""
    table: dict[Role, frozenset[Permission]] = {}
    held: frozenset[Permission] = frozenset()
    for role in ROLES:
        held |= _GRANTS[role]
        table[role] = held
    return MappingProxyType(table)


ROLE_PERMISSIONS = _cumulative()


def needs(permission: Permission) -> dict[str, Permission]:
    """A route's ``opt``: the permission it needs."""
    return {NEEDS: permission}


def granted(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def weakest_role(permission: Permission) -> Role | None:
    """The weakest role holding ``permission``; None for PROCESS, which no user holds."""
    return next((role for role in ROLES if granted(role, permission)), None)
