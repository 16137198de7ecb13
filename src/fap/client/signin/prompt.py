"""What signing in shows the person and asks of them, as the CLI (or a test) provides it.

The flows never print: they hand the code to enter, or the page to open, to a :class:`SignInPrompt`,
and ask it which provider to use when the server trusts several.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fap.api import Provider

__all__ = ("DeviceCode", "SignInPrompt", "browser_available")

# Values of CI that mean "not CI": any other value (true, 1, yes, a name) means a CI runner.
_NOT_CI = frozenset({"", "0", "false", "no"})


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What the person needs to approve a device sign-in (RFC 8628 §3.3); never the device code
    itself, which only the polling client may hold."""

    user_code: str
    verification_uri: str
    verification_uri_complete: (
        str | None
    )  # the page with the code filled in, if the provider has one
    expires_in: float  # seconds


class SignInPrompt(Protocol):
    @property
    def browser(self) -> bool:
        """True where a browser can be opened for the person (see :func:`browser_available`)."""
        ...

    @property
    def interactive(self) -> bool:
        """True where the person can answer a question (a terminal)."""
        ...

    def show_code(self, code: DeviceCode) -> None:
        """Tell the person where to go and which code to enter."""

    def open_browser(self, url: str) -> None:
        """Say that ``url`` is to be opened, and open it in a browser (returns at once)."""

    def choose(self, providers: Sequence[Provider]) -> Provider:
        """Ask which of ``providers`` to sign in with (only when ``interactive``)."""
        ...


def browser_available(environ: Mapping[str, str], *, terminal: bool, platform: str) -> bool:
    """Whether to open a browser: a person at a terminal, a display, and no CI runner (CI=true).

    macOS and Windows always have a display for a terminal's user; elsewhere it is X11's DISPLAY
    or Wayland's WAYLAND_DISPLAY (over plain SSH there is neither, and a browser would not show).
    """
    if environ.get("CI", "").strip().lower() not in _NOT_CI or not terminal:
        return False
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
