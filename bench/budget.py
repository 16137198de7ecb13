"""The run's time budget: `make bench` must end within 10 minutes on a 2-core machine.

Each section says what it expects to cost before it starts; one that would not fit is skipped
and the report says so, rather than the run overrunning or a section being cut short into
numbers that mean something else. Every command's own timeout is also bounded by what is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ("Budget",)

# No command is given less than this, so that a nearly spent budget fails fast and loudly
# rather than killing a tool a second into a transfer that would have finished.
_MIN_TIMEOUT = 20.0


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.monotonic)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def allows(self, section: str, estimate: float) -> bool:
        """True when ``section`` (expected to take ``estimate`` s) fits; else it is recorded as
        skipped, with why."""
        if estimate <= self.left():
            return True
        self.skipped.append(
            {
                "section": section,
                "reason": f"time budget: needs ~{estimate:.0f} s, {max(self.left(), 0):.0f} s "
                f"of {self.seconds:.0f} s left",
            }
        )
        return False

    def timeout(self, wanted: float) -> float:
        """A command's timeout: what it may need, but never past the end of the budget (with a
        floor, see ``_MIN_TIMEOUT``)."""
        return max(min(wanted, self.left()), _MIN_TIMEOUT)
