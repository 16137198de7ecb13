"""Fuzzing the API: schemathesis generates requests from the served OpenAPI schema, valid and
invalid, for every route, and sends each with an owner token, a processor token and none.

No answer may be a 5xx, and every answer must be one the schema describes (its status, its body's
shape). A new route is fuzzed without editing this test; a refusal the schema does not list fails
it. Derandomized (the same cases every run) and bounded, so that it runs in every ``make test``.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from tests.unit.server.harness import BASE, Server

# Per route and generation mode: ~17 routes x 2 modes x 10 = ~300 cases, each sent three times.
EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def no_collection_while_parsing() -> Iterator[None]:
    """No garbage collection while the test runs: hypothesis parses the source of every local
    module (``ast.parse``), and on Python 3.11 the AST builder keeps its recursion count in state
    shared by the whole interpreter. A collection inside one parse can run a finalizer that parses
    too (3.11's tracebacks parse source for their carets), which corrupts the count and fails the
    outer parse with "SystemError: AST constructor recursion depth mismatch". Garbage of earlier
    tests in the same worker is collected first, so nothing is left to finalize meanwhile."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def generated_cases(schema: Any) -> list[Case]:
    """The same cases every run: hypothesis derandomized, no example database."""
    cases: list[Case] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(operation.as_strategy(generation_mode=mode))
            def collect(case: Case) -> None:
                cases.append(case)

            # A route without parameters or body has no invalid request to make.
            with contextlib.suppress(Unsatisfiable):
                collect()
    return cases


async def send(server: Server, case: Case, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    sent = case.as_transport_kwargs(base_url=BASE, headers=headers)
    body: dict[str, Any] = {}
    if "json" in sent:
        body["content"] = json.dumps(sent["json"]).encode()
    elif sent.get("data") is not None:
        data = sent["data"]
        body["content"] = data.encode() if isinstance(data, str) else data
    return await server.http.request(
        sent["method"],
        sent["url"],
        headers={k: str(v) for k, v in (sent.get("headers") or {}).items()},
        params=sent.get("params"),
        **body,
    )


@pytest.fixture
async def schema(server: Server) -> Any:
    served = await server.http.get("/schema/openapi.json")
    assert served.status_code == 200, served.text
    return schemathesis.openapi.from_dict(served.json())


async def test_no_request_is_answered_a_5xx_or_outside_the_schema(
    server: Server, schema: Any, record_property: Callable[[str, object], None]
) -> None:
    cases = generated_cases(schema)
    routes = {(case.method, case.path) for case in cases}
    assert len(routes) >= 17, routes  # every route of the schema was fuzzed
    failures: list[str] = []
    for case in cases:
        for token in (server.owner, server.processor, None):
            response = await send(server, case, token)
            try:
                case.validate_response(response, checks=CHECKS)
            except AssertionError as error:  # schemathesis' failures are AssertionErrors
                first = str(error).strip().splitlines()[0]
                failures.append(f"{case.method} {case.formatted_path}: {first}\n{response.text}")
    record_property(
        "figures", f"schemathesis: {len(cases)} cases x 3 tokens, {len(failures)} failures"
    )
    assert not failures, "\n".join(failures[:10])
