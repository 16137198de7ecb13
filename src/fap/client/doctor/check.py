"""What one check of ``fap doctor`` finds: ok, a warning, a failure or skipped, and what to do."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fap.errors import EXIT_FAILURE

__all__ = ("Check", "Outcome", "exit_code_for", "failed", "ok", "skipped", "warning")


class Outcome(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"  # fap works, with a caveat worth knowing
    FAILED = "failed"  # something a command needs does not work
    SKIPPED = "skipped"  # it needs a check that failed


@dataclass(frozen=True, slots=True)
class Check:
    """One check's finding: ``detail`` says what was found and, short of ok, what to do."""

    name: str
    outcome: Outcome
    detail: str
    # A failed check's exit code: that of the FapError it stands for.
    exit_code: int = EXIT_FAILURE


def ok(name: str, detail: str) -> Check:
    return Check(name, Outcome.OK, detail)


def warning(name: str, detail: str) -> Check:
    return Check(name, Outcome.WARNING, detail)


def failed(name: str, detail: str, exit_code: int = EXIT_FAILURE) -> Check:
    return Check(name, Outcome.FAILED, detail, exit_code)


def skipped(name: str, because: str) -> Check:
    return Check(name, Outcome.SKIPPED, because)


def exit_code_for(checks: list[Check]) -> int:
    """0 when nothing failed (warnings allowed); else the exit code of the first failure."""
    return next((check.exit_code for check in checks if check.outcome is Outcome.FAILED), 0)
