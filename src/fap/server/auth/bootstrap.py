"""The first start without an identity provider: organisation ``local`` and its owner.

The owner's and a processor's tokens are written to the data directory (mode 0600), and only when
the organisation is created: a restart neither rotates them nor writes them again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from fap.config import ServerSettings
from fap.server.auth.plans import quotas_of
from fap.server.auth.tokens import hash_token, new_token
from fap.server.store import NewOrg, Store

__all__ = ("LOCAL_ORG", "OWNER_TOKEN_FILE", "PROCESSOR_TOKEN_FILE", "bootstrap_local")

logger = logging.getLogger(__name__)

LOCAL_ORG = "local"
LOCAL_OWNER = "owner"
OWNER_TOKEN_FILE = "local-owner.token"  # noqa: S105 (a file name)
PROCESSOR_TOKEN_FILE = "local-processor.token"  # noqa: S105 (a file name)


async def bootstrap_local(store: Store, settings: ServerSettings, now: float) -> bool:
    """Create organisation ``local`` unless it exists; True if it was created now."""
    owner_token = new_token("user")
    processor_token = new_token("processor")
    files = {
        settings.data_dir / OWNER_TOKEN_FILE: owner_token,
        settings.data_dir / PROCESSOR_TOKEN_FILE: processor_token,
    }

    async def write_files() -> None:
        for path, token in files.items():
            await asyncio.to_thread(_write_secret, path, token)

    created = await store.accounts.create_org_once(
        NewOrg(
            name=LOCAL_ORG,
            default_engine=settings.default_engine,
            quotas=quotas_of("local", settings),
            owner_name=LOCAL_OWNER,
            owner_token_hash=hash_token(owner_token),
            processor_token_hash=hash_token(processor_token),
        ),
        now,
        write_files,
    )
    if created:
        logger.info(
            "Created organisation %r with user %r; tokens written to %s and %s",
            LOCAL_ORG,
            LOCAL_OWNER,
            *files,
        )
    return created


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user alone, replacing it atomically."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    temp.replace(path)
