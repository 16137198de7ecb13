"""The engine's HTTP routes, in-process (the real process on a unix socket is in integration)."""

from __future__ import annotations

import hashlib
import io
import logging
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


async def test_an_analyzer_failure_logs_one_line_and_its_traceback_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The engine's output is the worker's log: a file the analyzer refuses is the job's failure,
    # reported there by the worker in one line, not a traceback at WARNING or above.
    caplog.set_level(logging.DEBUG, logger="fap.engine")
    async with _client(analyzers.fail) as client:
        answer = await client.post("/v1/analyze", content=DATA, headers=HEADERS)
    assert answer.status_code == 500
    records = [r for r in caplog.records if r.name.startswith("fap.engine")]
    assert not [r for r in records if r.levelno >= logging.WARNING]
    [said] = [r for r in records if r.levelno == logging.INFO]
    assert said.getMessage() == (
        "Upload up-1 (déjà vu.txt): the analyzer raised ValueError: this analyzer always fails."
    )
    assert said.exc_info is None
    [traceback] = [r for r in records if r.exc_info]
    assert traceback.levelno == logging.DEBUG


def _text_lines(stream: BinaryIO, meta: FileMeta) -> object:
    """What docs/engines.md promises of the stream: lines, text, exact reads, no seeking."""
    first = stream.readline()
    exact = stream.read(3)
    text = io.TextIOWrapper(stream, encoding="utf-8")
    rest = list(text)
    return {
        "first": first.decode(),
        "exact": exact.decode(),
        "rest": len(rest),
        "seekable": stream.seekable(),
        "after_end": stream.read(10).decode(),
    }


async def test_the_stream_reads_lines_text_and_exact_sizes_but_does_not_seek() -> None:
    async with _client(_text_lines) as client:
        answer = await client.post("/v1/analyze", content=_chunks(DATA, 7), headers=HEADERS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "first": "some bytes\n",
        "exact": "som",
        "rest": 999,
        "seekable": False,
        "after_end": "",
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"data": b"raw"}, "Object of type bytes is not JSON serializable"),
        ({"ratio": float("inf")}, "Out of range float values are not JSON compliant"),
        ({("a", "b"): 1}, "keys must be str, int, float, bool or None, not tuple"),
        ({"text": "\ud800"}, "surrogates not allowed"),
    ],
    ids=["bytes", "infinity", "tuple-key", "lone-surrogate"],
)
async def test_a_result_that_is_not_json_says_why_in_one_line(value: object, says: str) -> None:
    def returns(stream: BinaryIO, meta: FileMeta) -> object:
        return value

    async with _client(returns) as client:
        answer = await client.post("/v1/analyze", content=DATA, headers=HEADERS)
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error.startswith("The analyzer returned a value that is not JSON: ")
    assert says in error
    assert "\n" not in error


async def test_tuples_and_plain_keys_are_json_as_python_writes_them() -> None:
    def returns(stream: BinaryIO, meta: FileMeta) -> object:
        return {"pair": (1, 2), 3: None, "é": "ü"}

    async with _client(returns) as client:
        answer = await client.post("/v1/analyze", content=DATA, headers=HEADERS)
    assert answer.status_code == 200
    assert answer.content == '{"pair": [1, 2], "3": null, "é": "ü"}'.encode()
