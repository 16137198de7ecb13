"""Authentication and roles: tokens, principals, the access guard, the local bootstrap."""

from fap.server.auth.bootstrap import (
    LOCAL_ORG,
    OWNER_TOKEN_FILE,
    PROCESSOR_TOKEN_FILE,
    bootstrap_local,
)
from fap.server.auth.principal import (
    ACCESS,
    UPLOAD_ROLES,
    Access,
    Caller,
    Processor,
    auth_guard,
    caller,
    processor,
)
from fap.server.auth.tokens import TokenKind, hash_token, new_token, token_kind

__all__ = (
    "ACCESS",
    "LOCAL_ORG",
    "OWNER_TOKEN_FILE",
    "PROCESSOR_TOKEN_FILE",
    "UPLOAD_ROLES",
    "Access",
    "Caller",
    "Processor",
    "TokenKind",
    "auth_guard",
    "bootstrap_local",
    "caller",
    "hash_token",
    "new_token",
    "processor",
    "token_kind",
)
