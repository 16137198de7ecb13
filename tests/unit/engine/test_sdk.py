"""Loading an analyzer by ``module:function`` and checking engine names: one clear sentence each."""

from __future__ import annotations

import pytest

from fap.engine import EngineSetupError, check_engine_name, load_analyzer
from fap.engine.reference import analyze


def test_loads_the_reference_analyzer() -> None:
    assert load_analyzer("fap.engine.reference:analyze") is analyze


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("fap.engine.reference", "not of the form module:function"),
        (":analyze", "not of the form module:function"),
        ("no_such_module_here:analyze", "cannot be found"),
        ("fap.engine.reference:nothing", "has no 'nothing'"),
        ("fap.engine.reference:BLOCK", "is not callable"),
        ("tests.engines.broken:analyze", "failed to import: RuntimeError"),
    ],
)
def test_a_bad_analyzer_spec_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(EngineSetupError, match=says):
        load_analyzer(spec)


@pytest.mark.parametrize("name", ["size@1", "my-engine@2.0.1", "a_b@2026-11-30"])
def test_engine_names_are_name_at_version(name: str) -> None:
    assert check_engine_name(name) == name


@pytest.mark.parametrize("name", ["size", "size@", "@1", "si ze@1", "size@1@2", ""])
def test_other_engine_names_are_refused(name: str) -> None:
    with pytest.raises(EngineSetupError, match="NAME@VERSION"):
        check_engine_name(name)
