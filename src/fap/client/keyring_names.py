"""Where fap's secrets sit in the OS keyring: one service, shared by every entry fap keeps.

One name for all of them (the device identity, a token per server), so that a user who looks for
fap in their keychain, or removes it, finds every entry together; and so that the name, which
outlives every release, cannot drift between the modules that write and read them.
"""

from __future__ import annotations

__all__ = ("KEYRING_SERVICE",)

KEYRING_SERVICE = "fap"
