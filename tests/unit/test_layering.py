"""Imports flow one way (DESIGN.md): cli → client | server | worker | engine → the leaf modules.

Read statically from the source, so an import hidden inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "fap"
ROLES = {"client", "server", "worker", "engine"}
LEAVES = {
    "api",
    "transfer",
    "crypto",
    "config",
    "errors",
    "durations",
    "sizes",
    "backoff",
    "logs",
    "issuers",
}

# What each part may import of fap, besides itself.
ALLOWED: dict[str, set[str]] = {
    "cli": ROLES | LEAVES | {"supervise", "__init__"},
    "client": LEAVES | {"__init__"},
    "server": LEAVES | {"__init__"},
    "worker": LEAVES | {"__init__"},
    "engine": set(),  # replaceable by an engine in any language: nothing of fap but itself
    "supervise": LEAVES,  # runs the roles as processes, imports none of them
    **{leaf: LEAVES for leaf in LEAVES},
}
# Modules of another part that one may import all the same: the engine protocol's constants are
# the wire contract between worker and engine; the engine keeps them, since it imports no fap.
EXCEPTIONS: dict[str, set[str]] = {
    "worker": {"fap.engine.protocol"},
    # The engine-name rule lives there (an engine reports its name); the wire contract re-exports it.
    "api": {"fap.engine.protocol"},
}


def _part(module: str) -> str:
    """``fap.server.store.jobs`` → ``server``; ``fap`` itself → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _fap_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("fap"))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and (node.module == "fap" or node.module.startswith("fap."))
        ):
            found.add(node.module)
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_a_module_imports_only_what_its_layer_may(path: Path) -> None:
    relative = path.relative_to(SRC)
    own = relative.parts[0].removesuffix(".py")
    if own == "__init__":
        return  # fap/__init__.py: the version only
    allowed = ALLOWED[own] | {own}
    wrong = sorted(
        m
        for m in _fap_imports(path)
        if _part(m) not in allowed and m not in EXCEPTIONS.get(own, set())
    )
    assert not wrong, f"{relative} imports {wrong}, against the layering of DESIGN.md"


def test_every_part_of_the_package_has_a_rule() -> None:
    parts = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in MODULES}
    assert parts - {"__init__"} <= set(ALLOWED)
