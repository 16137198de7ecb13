"""age (X25519) identities and recipients; sealing results for their owners.

Any standard ``age`` tool opens what :func:`seal` produces, given the device's identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyrage

from fap.errors import InputError, IntegrityError

__all__ = ("DeviceIdentity", "check_recipient", "open_sealed", "seal")


@dataclass(frozen=True)
class DeviceIdentity:
    """A device's age key pair; ``secret`` is the ``AGE-SECRET-KEY-1…`` line, never sent anywhere."""

    secret: str

    @classmethod
    def generate(cls) -> DeviceIdentity:
        return cls(str(pyrage.x25519.Identity.generate()))

    @classmethod
    def parse(cls, text: str) -> DeviceIdentity:
        lines = [line.strip() for line in text.splitlines()]
        keys = [line for line in lines if line.startswith("AGE-SECRET-KEY-")]
        if len(keys) != 1:
            raise InputError("The device key is not a single age identity (AGE-SECRET-KEY-1…).")
        try:
            pyrage.x25519.Identity.from_str(keys[0])
        except pyrage.IdentityError as error:
            raise InputError(f"The device key is not a valid age identity: {error}.") from error
        return cls(keys[0])

    @property
    def recipient(self) -> str:
        return str(pyrage.x25519.Identity.from_str(self.secret).to_public())


def check_recipient(recipient: str) -> str:
    """Answer ``recipient`` if it is an age X25519 public key (``age1…``), else raise InputError."""
    try:
        pyrage.x25519.Recipient.from_str(recipient)
    except pyrage.RecipientError as error:
        raise InputError(f"{recipient[:80]!r} is not an age public key: {error}.") from error
    return recipient


def seal(plaintext: bytes, recipients: list[str]) -> bytes:
    """Encrypt ``plaintext`` so that each of ``recipients`` (and nobody else) can open it."""
    if not recipients:
        raise InputError("There is no device key to seal the result for.")
    keys = [pyrage.x25519.Recipient.from_str(check_recipient(r)) for r in recipients]
    ciphertext: bytes = pyrage.encrypt(plaintext, keys)
    return ciphertext


def open_sealed(ciphertext: bytes, identity: DeviceIdentity) -> bytes:
    try:
        plaintext: bytes = pyrage.decrypt(
            ciphertext, [pyrage.x25519.Identity.from_str(identity.secret)]
        )
    except pyrage.DecryptError as error:
        raise IntegrityError(
            f"The result cannot be opened with this device's key: {error}."
        ) from error
    return plaintext
