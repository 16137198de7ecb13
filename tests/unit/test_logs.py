"""No secret in fap's logs at any level: the sources are fixed, and every line is redacted."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest

from fap.logs import RedactingFormatter, configure, redact, without_query

SIGNED = (
    "http://127.0.0.1:8700/blobs/uploads/u1/chunks/00000000"
    "?exp=1796116890&size=300000&sha256=a487&sig=4d4fddfc2d7ec6d139ace26a0a53874c9226fca4"
)
S3 = (
    "https://s3.example.com/bucket/uploads/u1/chunks/00000001?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)
TOKEN = "fap_user_Zm9vYmFyYmF6cXV4cXV1eGZyb2JuaXR6"
# A signed JWT's shape: base64 of '{"alg"…' and of '{"sub"…', then a signature.
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
IDENTITY = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"GET {SIGNED} 200", "4d4fddfc2d7ec6d139ace26a"),
        (f'HTTP Request: PUT {S3} "HTTP/1.1 200 OK"', "0123456789abcdef"),
        ('127.0.0.1:4 - "GET /blobs/x?exp=1&sig=abcdef0123456789 HTTP/1.1" 200', "abcdef0123"),
        (f"token {TOKEN} refused", "Zm9vYmFyYmF6"),
        (f"key: {IDENTITY}", "QQQQQQQQQQ"),
        ("Authorization: Bearer abc.def.ghi-jkl", "abc.def"),
        ("postgresql+asyncpg://fap:hunter2-long@db/fap", "hunter2"),
        ('{"lease_token": "LGhi1GhlXq2cAfbU1mXXrI6iLFvsNZkv"}', "LGhi1Ghl"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "wJalrXUt"),
        ("[SQL: UPDATE uploads]\n[parameters: ('leased', 'LGhi1GhlXq2cAfbU')]", "LGhi1Ghl"),
        ("DETAIL: Key (lease_token)=(LGhi1GhlXq2cAfbU) already exists.", "LGhi1Ghl"),
        (f"id token {JWT} verified", "c2lnbmF0dXJl"),
        ('{"device_code": "KOmAtFO2PNyq_Z4uq38te2ON"}', "KOmAtFO2"),
        ('{"refresh_token": "Rk9PQkFSQkFaUVVYMTIz", "id_token": "x"}', "Rk9PQkFS"),
        ("client_secret=GOCSPX-abcdefghijklmnop", "GOCSPX"),
    ],
)
def test_redact_takes_out_every_secret_shape(line: str, secret: str) -> None:
    assert secret not in redact(line)


def test_redact_keeps_what_a_reader_needs() -> None:
    assert redact(f"GET {SIGNED} 200") == (
        "GET http://127.0.0.1:8700/blobs/uploads/u1/chunks/00000000 200"
    )
    sentence = "Cannot listen on 127.0.0.1:8700: in use; is another server running there? Choose."
    assert redact(sentence) == sentence
    assert without_query(SIGNED) == SIGNED.split("?")[0]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """fap's logging as ``fap work -v`` sets it up, its handler writing to a buffer; the global
    logging state is put back afterwards for the tests that follow."""
    names = ["", *_TOUCHED]
    saved = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).filters))
        for name in names
    }
    handlers = list(logging.getLogger().handlers)
    configure(logging.INFO, verbose=True)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root = logging.getLogger()
    root.handlers[:] = handlers
    for name, (level, filters) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).filters[:] = filters


_TOUCHED = (
    "httpx",
    "uvicorn.access",
    "aiosqlite",
    "sqlalchemy",
    "asyncpg",
    "botocore",
    "aiobotocore",
    "boto3",
    "urllib3",
    "httpcore",
    "alembic",
)


def test_httpx_request_lines_name_the_path_only(captured: io.StringIO) -> None:
    logging.getLogger("httpx").info(
        'HTTP Request: %s %s "%s %d %s"', "GET", httpx.URL(SIGNED), "HTTP/1.1", 200, "OK"
    )
    assert "/blobs/uploads/u1/chunks/00000000 " in captured.getvalue()
    assert "sig=" not in captured.getvalue()


def test_uvicorn_access_lines_keep_their_shape_and_lose_the_query(captured: io.StringIO) -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/blobs/k?exp=1&sig=ab12", "1.1", 200),
        None,
    )
    logging.getLogger("uvicorn.access").handle(record)
    assert record.args == ("127.0.0.1:5", "GET", "/blobs/k", "1.1", 200)  # positions kept
    assert '"GET /blobs/k HTTP/1.1" 200' in captured.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "aiosqlite",
        "sqlalchemy.engine",
        "asyncpg",
        "botocore.auth",
        "aiobotocore.endpoint",
        "httpcore.http11",
        "msal.application",
        "oauthlib.oauth2.rfc6749",
        "google_auth_oauthlib.flow",
    ],
)
def test_sql_and_sdk_debug_lines_stay_out_even_with_verbose(
    captured: io.StringIO, name: str
) -> None:
    # Their debug lines carry SQL parameters (lease tokens), signed headers, raw headers.
    logging.getLogger(name).debug("executing UPDATE uploads SET ... (%r,)", "a-lease-token")
    assert "a-lease-token" not in captured.getvalue()
    logging.getLogger("fap.worker").debug("fap's own debug detail")
    assert "fap's own debug detail" in captured.getvalue()


def test_a_traceback_is_redacted_too() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise RuntimeError(f"PUT {SIGNED} failed")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    assert "sig=" not in formatter.format(record)
    assert "/blobs/uploads/u1/chunks/00000000 failed" in formatter.format(record)
