"""Every body is decoded strictly, as its declared type, and bounded in depth and size: a value
of another JSON type is a 400, never coerced, and no nesting reaches a decoder's recursion."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from tests.unit.server.harness import CHUNK, Server, error_body
from tests.unit.server.test_errors import BODY_ROUTES, fill

from fap.api import JOB_CHUNKS, LEASE, UPLOADS, UPLOADS_WAIT
from fap.server.routes.request import MAX_JSON_CONTAINERS, MAX_JSON_DEPTH

# Ten times Python's recursion limit: enough to exhaust any recursive decoder.
DEEP = 10_000


@pytest.fixture
async def ids(server: Server) -> tuple[str, str]:
    """A real upload, leased, so that job routes reach their checks; its id and its job's."""
    info = await server.upload(server.owner, b"some data")
    lease = await server.lease()
    assert lease is not None
    return info.id, lease.job_id


def nested(depth: int, opener: str = "[") -> str:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '{"a":' if opener == "{" else "["
    outer = "}" if opener == "{" else "]"
    return inner * depth + "1" + outer * depth if opener == "{" else "[" * depth + closer * depth


DEEP_OR_SPRAWLING = {
    "array": nested(DEEP),
    "object": nested(DEEP, "{"),
    "field": '{"name": ' + nested(DEEP) + "}",
    "unknown field": '{"unknown_field": ' + nested(DEEP) + "}",
    "item": '{"ids": [' + nested(DEEP) + "]}",
    "unclosed": "[" * DEEP,
    "many": "[]," * (MAX_JSON_CONTAINERS + 1),
    "just too deep": nested(MAX_JSON_DEPTH + 1),
}


@pytest.mark.parametrize(("path", "who"), BODY_ROUTES)
async def test_deep_or_sprawling_json_is_400_on_every_route(
    server: Server, ids: tuple[str, str], path: str, who: str
) -> None:
    token = server.owner if who == "owner" else server.processor
    for what, body in DEEP_OR_SPRAWLING.items():
        response = await server.call("POST", fill(path, *ids), token, body.encode())
        assert response.status_code == 400, (what, response.text)
        error_body(response)


async def test_nesting_within_the_bound_is_decoded_as_usual(server: Server) -> None:
    """Brackets inside strings are text, and the bound leaves room for real messages."""
    name = "[[[[{{{{" * 100 + ".csv"
    data = b"bracketed"
    body = {
        "name": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "chunk_size": CHUNK,
        "extra": nested(MAX_JSON_DEPTH - 2),  # a newer client's field, ignored
    }
    await server.register_device(server.owner)
    response = await server.call("POST", UPLOADS, server.owner, body)
    assert response.status_code == 201, response.text


def valid_bodies(lease: dict[str, Any], upload_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    data = b"strict"
    return [
        (
            UPLOADS,
            "owner",
            {"name": "a.csv", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        ),
        (UPLOADS_WAIT, "owner", {"ids": [upload_id], "timeout": 0.0}),
        (LEASE, "processor", {"worker_id": "w", "engines": ["size@1"], "timeout": 0.0}),
        (JOB_CHUNKS, "processor", {"lease_token": lease["lease_token"], "timeout": 0.0}),
    ]


# What a lenient decoder would take for the declared type: numbers as strings, booleans as numbers.
COERCIBLE: dict[type, list[Any]] = {
    int: ["100", "6", 6.0, True],
    float: ["0", "0.5", True],
    str: [1, True, ["x"]],
    list: ["x", {"a": 1}],
}


async def test_every_field_of_the_wrong_json_type_is_400(
    server: Server, ids: tuple[str, str]
) -> None:
    upload_id, job_id = ids
    token_of = {"owner": server.owner, "processor": server.processor}
    current = {"lease_token": "x"}
    await server.register_device(server.owner)
    for path, who, body in valid_bodies(current, upload_id):
        target = fill(path, upload_id, job_id)
        for field, value in body.items():
            kind = list if isinstance(value, list) else type(value)
            for wrong in COERCIBLE[kind]:
                response = await server.call("POST", target, token_of[who], {**body, field: wrong})
                assert response.status_code == 400, (path, field, wrong, response.text)
                assert "invalid" in error_body(response).detail, response.text


async def test_a_size_sent_as_a_string_is_refused_not_read_as_a_number(server: Server) -> None:
    data = b"x" * 100
    await server.register_device(server.owner)
    body = {"name": "n.csv", "size": "100", "sha256": hashlib.sha256(data).hexdigest()}
    response = await server.call("POST", UPLOADS, server.owner, body)
    assert response.status_code == 400
    assert "expected `int`, got `str` at `$.size`" in error_body(response).detail
    fine = await server.ok("POST", UPLOADS, server.owner, {**body, "size": 100}, returns=dict)
    assert fine["upload"]["size"] == 100
