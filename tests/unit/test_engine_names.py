"""One rule for engine names, NAME@VERSION: the server, ``fap upload --engine`` and ``fap engine``
accept the same names and refuse the same names, each in a sentence that says the rule."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import typer

from fap.cli.upload import check_engine as check_flag
from fap.engine import EngineSetupError, check_engine_name
from fap.server.errors import BadRequest
from fap.server.routes.validation import check_engine as check_request

NAMES: list[tuple[str, bool]] = [
    ("size@1", True),
    ("my-engine@2.0.1", True),
    ("a_b@2026-11-30", True),
    ("gpu.stats@1.0+cuda12", True),
    ("N" * 100 + "@" + "9" * 100, True),
    ("", False),
    ("size", False),
    ("size@", False),
    ("@1", False),
    ("size@1@2", False),
    ("si ze@1", False),
    ("size@1 ", False),
    ("size@1\n", False),
    ("-size@1", False),
    ("size@-1", False),
    ("../size@1", False),
    ("size+x@1", False),
    ("größe@1", False),
    ("N" * 101 + "@1", False),
    ("size@" + "9" * 101, False),
]

# Each role's check, and the error it refuses a name with.
ROLES: dict[str, tuple[Callable[[str], object], type[Exception]]] = {
    "server": (check_request, BadRequest),
    "fap upload --engine": (check_flag, typer.BadParameter),
    "fap engine --engine": (check_engine_name, EngineSetupError),
}


def _verdict(role: str, name: str) -> bool:
    check, refusal = ROLES[role]
    try:
        answer = check(name)
    except refusal as error:
        assert "NAME@VERSION" in str(error).upper()
        assert "at most 100" in str(error)
        return False
    assert answer == name
    return True


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 24 else f"{len(name)} characters"


@pytest.mark.parametrize(("name", "valid"), NAMES, ids=[_shown(name) for name, _ in NAMES])
def test_every_role_accepts_and_refuses_the_same_engine_names(name: str, valid: bool) -> None:
    verdicts = {role: _verdict(role, name) for role in ROLES}
    assert verdicts == dict.fromkeys(ROLES, valid)
