"""The one rule every retry loop of fap waits by: exponential backoff, capped, usually jittered.

Jitter matters wherever many peers are cut off together (workers and clients of a replica that
restarted): waits of ±50 % around the curve bring them back spread out, not in one burst. Loops
that only one party runs (the sweeper, an engine's restarts) wait on the plain curve.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ("Backoff",)

# 2**62 times any first delay is past every cap; a larger exponent could only overflow.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits of ``first``, twice that, four times … at most ``cap`` seconds."""

    first: float
    cap: float
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1 is the first retry)."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        plain = min(self.cap, self.first * 2.0**exponent)
        if not self.jitter:
            return plain
        return plain * (0.5 + random.random())  # noqa: S311 (spreading peers, not secrecy)
