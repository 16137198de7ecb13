"""Nothing a caller sends yields 500: every refusal is a 4xx ErrorBody with one sentence."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.server.harness import Server, error_body

from fap.api import (
    API_VERSION,
    CHUNK_URLS,
    CHUNKS,
    DEVICES,
    JOB_CHUNKS,
    JOB_COMPLETE,
    JOB_FAIL,
    JOB_HEARTBEAT,
    JOB_RESULT_URL,
    LEASE,
    UPLOADS,
    UPLOADS_WAIT,
)

# Every route that takes a body, and whose token it needs.
BODY_ROUTES = [
    (DEVICES, "owner"),
    (UPLOADS, "owner"),
    (UPLOADS_WAIT, "owner"),
    (CHUNK_URLS, "owner"),
    (CHUNKS, "owner"),
    (LEASE, "processor"),
    (JOB_HEARTBEAT, "processor"),
    (JOB_CHUNKS, "processor"),
    (JOB_RESULT_URL, "processor"),
    (JOB_COMPLETE, "processor"),
    (JOB_FAIL, "processor"),
]

MALFORMED: list[bytes] = [
    b"",
    b"{",
    b"not json",
    b"[]",
    b"null",
    b'"a string"',
    b"{}",
    b'{"seqs": "x", "ids": 5, "name": 1, "lease_token": 7, "worker_id": []}',
    b'{"size": 1e400, "seq": -99999999999999999999999, "timeout": "soon"}',
    b"\xff\xfe\x00",
    b'{"name": "\\ud800", "recipient": "\\udfff"}',
]


def fill(path: str, upload_id: str, job_id: str) -> str:
    return path.format(upload_id=upload_id, job_id=job_id)


@pytest.fixture
async def ids(server: Server) -> tuple[str, str]:
    """A real upload (leased, so job routes reach their checks) and its job id."""
    info = await server.upload(server.owner, b"some data")
    lease = await server.lease()
    assert lease is not None
    return info.id, lease.job_id


@pytest.mark.parametrize(("path", "who"), BODY_ROUTES)
async def test_a_malformed_body_is_400_on_every_route(
    server: Server, ids: tuple[str, str], path: str, who: str
) -> None:
    token = server.owner if who == "owner" else server.processor
    for body in MALFORMED:
        response = await server.call("POST", fill(path, *ids), token, body)
        assert response.status_code == 400, (path, body, response.text)
        detail = error_body(response).detail
        assert "\n" not in detail
        assert len(detail) < 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (JOB_CHUNKS, {"lease_token": "t", "after": 2**63 + 5}),
        (JOB_RESULT_URL, {"lease_token": "t", "size": 2**64 - 1}),
        (JOB_COMPLETE, {"lease_token": "t", "result_size": 2**64 - 1, "result_sha256": "0" * 64}),
        (CHUNK_URLS, {"chunks": [{"seq": 2**64 - 1, "size": 1, "sha256": "0" * 64}]}),
        (CHUNK_URLS, {"chunks": [{"seq": 0, "size": 2**64 - 1, "sha256": "0" * 64}]}),
        (
            CHUNKS,
            {
                "seq": 2**63,
                "raw_size": 2**64 - 1,
                "stored_size": 1,
                "codec": "raw",
                "sha256": "0" * 64,
            },
        ),
        (UPLOADS, {"name": "n", "size": 2**64 - 1, "sha256": "0" * 64}),
        (UPLOADS, {"name": "n", "size": 1, "sha256": "0" * 64, "chunk_size": 2**64 - 1}),
    ],
)
async def test_huge_numbers_are_refused_not_crashed_on(
    server: Server, ids: tuple[str, str], path: str, body: dict[str, Any]
) -> None:
    token = server.owner if path in (CHUNK_URLS, CHUNKS, UPLOADS) else server.processor
    response = await server.call("POST", fill(path, *ids), token, body)
    assert 400 <= response.status_code < 500, response.text
    error_body(response)


@pytest.mark.parametrize("upload_id", ["nope", "%00", "%ff%fe", "a" * 3000, "..%2F..%2Fetc"])
async def test_an_odd_path_parameter_is_404(server: Server, upload_id: str) -> None:
    response = await server.call("GET", f"/v1/uploads/{upload_id}", server.owner)
    assert response.status_code == 404
    error_body(response)


async def test_an_unknown_route_is_404_and_a_wrong_method_405(server: Server) -> None:
    unknown = await server.call("GET", "/v1/nothing-here", server.owner)
    assert unknown.status_code == 404
    assert "no route" in error_body(unknown).detail
    wrong = await server.call("DELETE", UPLOADS, server.owner)
    assert wrong.status_code == 405
    assert "not allowed" in error_body(wrong).detail


async def test_every_answer_names_the_api_version(server: Server) -> None:
    for response in [
        await server.call("GET", "/healthz", None),
        await server.call("GET", "/v1/nothing", None),
        await server.call("POST", LEASE, server.processor, b"{"),
    ]:
        assert response.headers["fap-api-version"] == API_VERSION


async def test_the_openapi_schema_is_served(server: Server) -> None:
    response = await server.call("GET", "/schema/openapi.json", None)
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/uploads" in paths
    assert "/v1/lease" in paths
