"""The person signing in, for the sign-in tests: a :class:`~fap.client.SignInPrompt` that acts on
what the client shows it, at the test's OpenID Connect provider, as someone at a browser would.

The client shows the code from inside its event loop and then polls; the person approves (or
denies) in a thread of their own meanwhile, as a person does while the terminal waits. Whatever
goes wrong in that thread is raised again by :meth:`Person.check`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx
from tests.support.oidc_provider import OidcProvider

from fap.api import Provider
from fap.client import DeviceCode

Action = Literal["approve", "deny", "nothing"]


@dataclass
class Person:
    provider: OidcProvider
    action: Action = "approve"
    account: str | None = None
    browser: bool = False
    interactive: bool = False
    answer: Callable[[Sequence[Provider]], Provider] | None = None
    codes: list[DeviceCode] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def show_code(self, code: DeviceCode) -> None:
        self.codes.append(code)
        if self.action == "approve":
            self.approve()
        elif self.action == "deny":
            self._act(lambda: self.provider.deny(code.user_code))

    def approve(self) -> None:
        """Approve the last code shown (now, for a person who acts only when the test says)."""
        code = self.codes[-1]
        self._act(lambda: self.provider.approve(code.user_code, self.account))

    def open_browser(self, url: str) -> None:
        """A code grant's authorization URL is signed in to, and the browser sent back to the
        client's loopback redirect; a device page needs nothing (the code was shown)."""
        self.opened.append(url)
        if self.codes:
            return

        def sign_in() -> None:
            back = self.provider.sign_in(url, self.account)
            httpx.get(back, timeout=30)

        self._act(sign_in)

    def choose(self, providers: Sequence[Provider]) -> Provider:
        assert self.answer is not None, "nobody was to be asked"
        return self.answer(providers)

    def check(self) -> None:
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive(), "the person is still at the browser"
        if self.errors:
            raise self.errors[0]

    def _act(self, step: Callable[[], object]) -> None:
        def run() -> None:
            try:
                step()
            except BaseException as error:  # noqa: BLE001  (raised again by check())
                self.errors.append(error)

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()
