"""Authentication and roles: tokens, principals, the permission table, the local bootstrap."""

from fap.server.auth.bootstrap import (
    LOCAL_ORG,
    OWNER_TOKEN_FILE,
    PROCESSOR_TOKEN_FILE,
    bootstrap_local,
)
from fap.server.auth.permissions import (
    NEEDS,
    ROLE_PERMISSIONS,
    Permission,
    granted,
    needs,
    weakest_role,
)
from fap.server.auth.plans import PLANS, quotas_of
from fap.server.auth.principal import (
    Caller,
    Person,
    Processor,
    auth_guard,
    caller,
    person,
    processor,
)
from fap.server.auth.tokens import TokenKind, hash_token, new_token, token_kind

__all__ = (
    "LOCAL_ORG",
    "NEEDS",
    "OWNER_TOKEN_FILE",
    "PLANS",
    "PROCESSOR_TOKEN_FILE",
    "ROLE_PERMISSIONS",
    "Caller",
    "Permission",
    "Person",
    "Processor",
    "TokenKind",
    "auth_guard",
    "bootstrap_local",
    "caller",
    "granted",
    "hash_token",
    "needs",
    "new_token",
    "person",
    "processor",
    "quotas_of",
    "token_kind",
    "weakest_role",
)
