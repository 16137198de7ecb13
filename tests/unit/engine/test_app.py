"""The engine's HTTP routes, in-process (the real process on a unix socket is in integration)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import BinaryIO

import httpx
import pytest
from tests.engines import analyzers

from fap.engine import FileMeta
from fap.engine.app import BadRequest, EngineApp, parse_meta
from fap.engine.reference import analyze

DATA = b"some bytes\n" * 1000
HEADERS = {
    "Fap-Upload-Id": "up-1",
    "Fap-File-Name": "d%C3%A9j%C3%A0%20vu.txt",
    "Fap-File-Size": str(len(DATA)),
    "Fap-File-Sha256": hashlib.sha256(DATA).hexdigest(),
}


def _client(analyzer: object = analyze, engine: str = "size@1") -> httpx.AsyncClient:
    app = EngineApp(analyzer, engine)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://engine")


async def _chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_info_names_the_engine_and_protocol() -> None:
    async with _client(engine="custom@7") as client:
        answer = await client.get("/v1/info")
    assert answer.status_code == 200
    assert answer.json() == {"engine": "custom@7", "protocol": 1}


async def test_analyze_streams_the_body_to_the_analyzer_with_the_file_meta() -> None:
    async with _client(analyzers.echo) as client:
        answer = await client.post("/v1/analyze", content=_chunks(DATA), headers=HEADERS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "upload_id": "up-1",
        "name": "déjà vu.txt",
        "size": len(DATA),
        "announced_sha256": HEADERS["Fap-File-Sha256"],
        "read": len(DATA),
        "sha256": hashlib.sha256(DATA).hexdigest(),
    }


async def test_an_analyzer_may_stop_reading_early() -> None:
    async with _client(analyzers.head_only) as client:
        answer = await client.post("/v1/analyze", content=_chunks(DATA), headers=HEADERS)
    assert answer.status_code == 200
    assert answer.json() == {"head": DATA[:4].hex()}


async def test_an_analyzer_that_raises_is_a_500_with_one_line() -> None:
    async with _client(analyzers.fail) as client:
        answer = await client.post("/v1/analyze", content=DATA, headers=HEADERS)
    assert answer.status_code == 500
    assert answer.json() == {"error": "The analyzer raised ValueError: this analyzer always fails."}


async def test_a_result_that_is_not_json_is_a_500_that_says_so() -> None:
    async with _client(analyzers.not_json) as client:
        answer = await client.post("/v1/analyze", content=DATA, headers=HEADERS)
    assert answer.status_code == 500
    assert "not JSON" in answer.json()["error"]
    assert "set" in answer.json()["error"]


def _nan(stream: BinaryIO, meta: FileMeta) -> object:
    return {"ratio": float("nan")}


async def test_nan_is_not_json_either() -> None:
    async with _client(_nan) as client:
        answer = await client.post("/v1/analyze", content=DATA, headers=HEADERS)
    assert answer.status_code == 500
    assert "not JSON" in answer.json()["error"]


@pytest.mark.parametrize(("size", "says"), [(len(DATA) + 1, "holds"), (len(DATA) - 1, "longer")])
async def test_a_body_of_another_size_than_announced_is_a_400(size: int, says: str) -> None:
    headers = {**HEADERS, "Fap-File-Size": str(size)}
    async with _client() as client:
        answer = await client.post("/v1/analyze", content=_chunks(DATA), headers=headers)
    assert answer.status_code == 400
    assert says in answer.json()["error"]


async def test_unknown_paths_and_methods_answer_json_errors() -> None:
    async with _client() as client:
        missing = await client.get("/v2/anything")
        wrong = await client.get("/v1/analyze")
    assert missing.status_code == 404
    assert "/v1/analyze" in missing.json()["error"]
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]


def test_parse_meta_decodes_the_name_and_normalises_the_checksum() -> None:
    headers = {**HEADERS, "Fap-File-Sha256": HEADERS["Fap-File-Sha256"].upper()}
    assert parse_meta(_raw(headers)) == FileMeta(
        upload_id="up-1",
        name="déjà vu.txt",
        size=len(DATA),
        sha256=HEADERS["Fap-File-Sha256"],
    )


@pytest.mark.parametrize(
    ("header", "value", "says"),
    [
        ("Fap-Upload-Id", None, "Fap-Upload-Id header is missing"),
        ("Fap-File-Name", None, "Fap-File-Name header is missing"),
        ("Fap-File-Name", "%FF%FE", "not percent-encoded UTF-8"),
        ("Fap-File-Size", "-1", "not a whole number"),
        ("Fap-File-Size", "12kB", "not a whole number"),
        ("Fap-File-Sha256", "abc", "64 hexadecimal digits"),
        ("Fap-File-Sha256", None, "Fap-File-Sha256 header is missing"),
    ],
)
def test_parse_meta_names_the_bad_header(header: str, value: str | None, says: str) -> None:
    headers = dict(HEADERS)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(BadRequest, match=says):
        parse_meta(_raw(headers))
