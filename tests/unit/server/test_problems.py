"""Errors have one tree, and only the HTTP edge gives them statuses: fap.server.errors names what
happened, fap.server.problems maps each class to its answer in one table; a service out of reach
is a warning and a 503 to retry, whichever service it is."""

from __future__ import annotations

import ast
import hashlib
import inspect
import logging
from pathlib import Path

import httpx
import pytest
from tests.unit.server.harness import Server, error_body

from fap.api import CHUNK_URLS, UPLOAD, ChunkSpec, ChunkUrlsRequest
from fap.server import errors
from fap.server.errors import BlobStoreUnavailable, StoreUnavailable
from fap.server.problems import CLIENT_CLOSED_REQUEST, answer_for
from fap.server.routes.openapi import ERROR_RESPONSES

SERVER = Path(errors.__file__).parent
ERRORS = [
    value
    for name in errors.__all__
    if inspect.isclass(value := getattr(errors, name)) and issubclass(value, Exception)
]


@pytest.mark.parametrize("kind", ERRORS, ids=lambda kind: kind.__name__)
def test_every_error_of_the_tree_has_an_answer_the_schema_describes(
    kind: type[Exception],
) -> None:
    answer = answer_for(kind)
    assert answer is not None, f"{kind.__name__} has no entry in problems.ANSWERS"
    # The API fuzzing test holds every answer to the schema: a status it lacks would fail there.
    assert answer.status in ERROR_RESPONSES or answer.status == CLIENT_CLOSED_REQUEST


def test_a_subclass_answers_as_its_nearest_base() -> None:
    sealed = answer_for(errors.Sealed)
    assert sealed is not None and sealed.status == 409
    assert answer_for(KeyError) is None  # not an error of ours: a bug, answered 500


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _relative(path: Path) -> str:
    return path.relative_to(SERVER).as_posix()


MODULES = sorted(SERVER.rglob("*.py"))
# The HTTP edge: the mapping itself, the app that installs it, and the request class, which
# catches Litestar's own report of a hang-up to raise ClientDisconnected instead.
MAY_RAISE_HTTP = {"problems.py", "routes/request.py"}
MAY_INSTALL_HANDLERS = {"app.py"}
# The API version negotiation answers a refusal itself, through the table: it holds a route's
# answer back to reshape it, and an error raised after that answer began could not be answered.
MAY_ANSWER = {"versions.py"}


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_only_the_http_edge_knows_http_errors(path: Path) -> None:
    imports = _imports(path)
    if _relative(path) not in MAY_RAISE_HTTP:
        assert "litestar.exceptions" not in imports, (
            f"{_relative(path)} imports litestar.exceptions: raise an error of fap.server.errors "
            "and give it a status in fap.server.problems.ANSWERS"
        )
    if _relative(path) not in MAY_INSTALL_HANDLERS | MAY_ANSWER | {"problems.py"}:
        assert "fap.server.problems" not in imports, (
            f"{_relative(path)} imports fap.server.problems: raise from fap.server.errors instead"
        )


def test_the_error_tree_is_framework_free() -> None:
    imports = _imports(SERVER / "errors.py")
    assert imports <= {"__future__", "re", "fap.errors"}, imports


async def test_an_object_store_out_of_reach_is_a_warning_and_a_503_to_retry(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"x" * 100
    created = await server.create_upload(server.owner, data)

    async def out_of_reach(*args: object, **kwargs: object) -> None:
        raise BlobStoreUnavailable("The object store s3://bucket at 10.0.0.9 failed: boom.")

    monkeypatch.setattr(server.services.blobs, "presign_put", out_of_reach)
    spec = ChunkSpec(seq=0, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    with caplog.at_level(logging.DEBUG, logger="fap.server.problems"):
        response = await server.call(
            "POST",
            CHUNK_URLS.format(upload_id=created.upload.id),
            server.owner,
            ChunkUrlsRequest(chunks=[spec]),
        )
    assert_retry_later(response, "object store", caplog)


async def test_a_database_out_of_reach_is_a_warning_and_a_503_to_retry(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def out_of_reach(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable(
            "The state store cannot be reached: connection to 10.0.0.9 refused.",
            lost_connection=False,
        )

    monkeypatch.setattr(server.services.store.uploads, "get", out_of_reach)
    with caplog.at_level(logging.DEBUG, logger="fap.server.problems"):
        response = await server.call("GET", UPLOAD.format(upload_id="u" * 32), server.owner)
    assert_retry_later(response, "database", caplog)


def assert_retry_later(
    response: httpx.Response, service: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    detail = error_body(response).detail
    assert service in detail and "try again" in detail
    assert "10.0.0.9" not in detail  # the address is for the log, not for the caller
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("10.0.0.9" in r.getMessage() for r in warned), caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
