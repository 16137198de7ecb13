"""``fap doctor``'s checks: each answers a :class:`Check`; :func:`diagnose` runs them all."""

from fap.client.doctor.check import Check, Outcome, exit_code_for
from fap.client.doctor.diagnose import diagnose

__all__ = ("Check", "Outcome", "diagnose", "exit_code_for")
