"""Dated API versions: a client pinned to an older version keeps that version's shapes, is told
the version is deprecated and until when, and an unknown or retired version is refused in one
sentence naming the versions spoken. The registry applies each version's backports in order."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from tests.unit.server.harness import BASE, Server, error_body, running_server
from typer.testing import CliRunner

from fap import __version__
from fap.api import (
    API_VERSION,
    API_VERSION_HEADER,
    CLIENT_LATEST_HEADER,
    DEPRECATION_HEADER,
    HEALTHZ,
    ME,
    ORG_HEADER,
    STATUS,
    SUNSET_HEADER,
    ApiSession,
    Me,
)
from fap.cli.app import app
from fap.errors import EXIT_INPUT
from fap.server.versions import VERSIONS, Answering, ApiVersion, Versions

OLD = "2026-11-30"
OLD_ME_FIELDS = {"user_id", "user_name", "org", "role", "default_engine", "max_file_size"}


async def get(server: Server, path: str, token: str | None, **headers: str) -> httpx.Response:
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    return await server.http.get(path, headers={**sent, **headers})


def old(**headers: str) -> dict[str, str]:
    return {API_VERSION_HEADER: OLD, **headers}


# -- the newest version ---------------------------------------------------------------------------


def test_this_release_speaks_the_newest_version_and_the_one_before() -> None:
    assert API_VERSION == "2026-12-01"
    assert VERSIONS.latest.name == API_VERSION
    assert VERSIONS.spoken(date(2026, 12, 1)) == [API_VERSION, OLD]


async def test_a_request_without_the_header_is_answered_in_the_newest_version(
    server: Server,
) -> None:
    response = await get(server, ME, server.owner)
    assert response.status_code == 200, response.text
    me = msgspec.json.decode(response.content, type=Me)
    assert [m.org for m in me.orgs] == ["local"]
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert DEPRECATION_HEADER not in response.headers
    assert SUNSET_HEADER not in response.headers


async def test_the_newest_version_asked_by_name_is_not_deprecated(server: Server) -> None:
    response = await get(server, ME, server.owner, **{API_VERSION_HEADER: API_VERSION})
    assert response.status_code == 200
    assert set(response.json()) == set(Me.__struct_fields__)
    assert DEPRECATION_HEADER not in response.headers


# -- an older version -----------------------------------------------------------------------------


async def test_a_client_pinned_to_2026_11_30_gets_me_in_its_shape(server: Server) -> None:
    response = await get(server, ME, server.owner, **old())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == OLD_ME_FIELDS
    assert body["user_name"] == "owner"
    assert (body["org"], body["role"]) == ("local", "owner")
    assert body["default_engine"] == server.settings.default_engine
    assert body["max_file_size"] == server.settings.max_file_size
    newest = (await get(server, ME, server.owner)).json()
    assert body["user_id"] == newest["user_id"]
    assert response.headers["content-length"] == str(len(response.content))


async def test_an_old_version_is_told_it_is_deprecated_and_when_it_goes(server: Server) -> None:
    response = await get(server, ME, server.owner, **old())
    assert response.headers[API_VERSION_HEADER] == API_VERSION  # the newest, always
    # RFC 9745: since when, as @UNIX-SECONDS; RFC 8594: from when, as an HTTP date.
    deprecated = datetime(2026, 12, 1, tzinfo=UTC)
    assert response.headers[DEPRECATION_HEADER] == f"@{int(deprecated.timestamp())}"
    sunset = parsedate_to_datetime(response.headers[SUNSET_HEADER])
    assert sunset.date() == date(2027, 3, 1)
    # Every route says so, reshaped or not, refusals too.
    status = await get(server, STATUS, server.owner, **old())
    assert status.status_code == 200
    assert DEPRECATION_HEADER in status.headers
    refused = await get(server, ME, None, **old())
    assert refused.status_code == 401
    assert DEPRECATION_HEADER in refused.headers


async def test_routes_without_a_change_answer_alike_in_both_versions(server: Server) -> None:
    newest = await get(server, STATUS, server.owner)
    older = await get(server, STATUS, server.owner, **old())
    assert older.json() == newest.json()


async def test_a_refusal_in_an_old_version_passes_unchanged(server: Server) -> None:
    refused = await get(server, ME, "fap_user_" + "x" * 30, **old())
    assert refused.status_code == 401
    error_body(refused)


async def test_a_user_of_several_organisations_names_the_one_the_old_shape_shows(
    server: Server,
) -> None:
    owner, _ = await server.new_org("acme")
    await server.ok("POST", "/v1/orgs", owner, {"name": "globex"}, returns=dict)

    refused = await get(server, ME, owner, **old())
    assert refused.status_code == 400
    detail = error_body(refused).detail
    assert "acme, globex" in detail
    assert "--org" in detail and "upgrade fap" in detail

    chosen = await get(server, ME, owner, **old(**{ORG_HEADER: "globex"}))
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["org"], chosen.json()["role"]) == ("globex", "owner")
    # The newest version lists both, whatever the header says.
    newest = await get(server, ME, owner, **{ORG_HEADER: "globex"})
    assert [m["org"] for m in newest.json()["orgs"]] == ["acme", "globex"]


async def test_a_user_of_one_organisation_gets_it_whatever_fap_org_says(server: Server) -> None:
    owner, _ = await server.new_org("acme")
    response = await get(server, ME, owner, **old(**{ORG_HEADER: "elsewhere"}))
    assert response.status_code == 200
    assert response.json()["org"] == "acme"


async def test_a_user_of_no_organisation_is_told_to_upgrade(server: Server) -> None:
    loner = await server.sign_in("loner@example.com")
    response = await get(server, ME, loner, **old())
    assert response.status_code == 400
    assert "upgrade fap" in error_body(response).detail


async def test_the_pinned_engine_shows_in_the_old_shape(server: Server) -> None:
    await server.call("PUT", "/v1/orgs/local/engine", server.owner, {"engine": "size@2"})
    body = (await get(server, ME, server.owner, **old())).json()
    assert body["default_engine"] == "size@2"


# -- unknown and retired versions -----------------------------------------------------------------


@pytest.mark.parametrize("asked", ["2026-01-01", "2099-12-31", "yesterday", "2026-11-30x"])
async def test_an_unknown_version_is_refused_naming_the_versions_spoken(
    server: Server, asked: str
) -> None:
    response = await get(server, ME, server.owner, **{API_VERSION_HEADER: asked})
    assert response.status_code == 400
    detail = error_body(response).detail
    assert f"API version {asked!r}" in detail
    assert "2026-12-01 and 2026-11-30" in detail
    assert detail.count(". ") == 0  # one sentence


async def test_the_version_is_checked_before_the_token(server: Server) -> None:
    response = await get(server, STATUS, None, **{API_VERSION_HEADER: "1999-01-01"})
    assert response.status_code == 400
    error_body(response)


async def test_routes_outside_v1_have_no_version(server: Server) -> None:
    response = await get(server, HEALTHZ, None, **{API_VERSION_HEADER: "1999-01-01"})
    assert response.status_code == 200


async def test_a_version_past_its_sunset_is_refused(server: Server) -> None:
    server.clock.now = parsedate_to_datetime("Mon, 01 Mar 2027 00:00:00 GMT").timestamp()
    response = await get(server, ME, server.owner, **old())
    assert response.status_code == 400
    detail = error_body(response).detail
    assert detail == (
        "API version 2026-11-30 was retired on 2027-03-01; this server speaks 2026-12-01: "
        "upgrade fap."
    )
    assert (await get(server, ME, server.owner)).status_code == 200


# -- the newest client release --------------------------------------------------------------------


async def test_every_answer_names_the_newest_client_release(server: Server) -> None:
    for path, token in ((HEALTHZ, None), (ME, server.owner), ("/v1/nowhere", server.owner)):
        response = await get(server, path, token)
        assert response.headers[CLIENT_LATEST_HEADER] == __version__, path


async def test_the_newest_client_release_is_a_server_setting(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", client_latest="9.1.0") as server:
        response = await get(server, HEALTHZ, None)
        assert response.headers[CLIENT_LATEST_HEADER] == "9.1.0"


@pytest.mark.parametrize("release", ["latest", "1.2.0-beta", "v1.2", "1..2"])
def test_fap_serve_refuses_a_newest_release_that_is_not_digits_and_dots(
    tmp_path: Path, release: str
) -> None:
    done = CliRunner().invoke(
        app, ["serve", "--data-dir", str(tmp_path / "data"), "--client-latest", release]
    )
    assert done.exit_code == EXIT_INPUT
    assert done.stderr == (
        f"error: The newest client release must be digits and dots, such as 1.4.0; {release!r} "
        "is not.\n"
    )
    assert not (tmp_path / "data").exists()


# -- the client's side ----------------------------------------------------------------------------


def session_for(server: Server, **kwargs: Any) -> ApiSession:
    return ApiSession(BASE, server.owner, transport=httpx.ASGITransport(app=server.app), **kwargs)


async def test_a_client_pinned_to_an_old_version_warns_once_per_session(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fap.api.session")
    async with session_for(server, api_version=OLD) as session:
        for _ in range(3):
            answer = await session.call("GET", ME, returns=dict)
            assert set(answer) == OLD_ME_FIELDS
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"The server at {BASE} deprecated API version 2026-11-30, which this fap speaks and "
        "stops answering it on 2027-03-01: upgrade fap."
    ]


async def test_a_current_client_is_not_warned_and_hears_of_the_newest_release(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    told: list[str] = []
    warned: list[str] = []
    async with session_for(server, warn=warned.append, on_release=told.append) as session:
        await session.call("GET", ME, returns=Me)
        await session.call("GET", ME, returns=Me)
    assert warned == []
    assert told == [__version__]  # once: it did not change
    assert session.client_latest == __version__


async def test_the_warning_goes_where_the_cli_says(server: Server) -> None:
    warned: list[str] = []
    async with session_for(server, api_version=OLD, warn=warned.append) as session:
        await session.call("GET", STATUS, returns=dict)
        await session.call("GET", STATUS, returns=dict)
    assert len(warned) == 1 and "deprecated API version 2026-11-30" in warned[0]


# -- the registry ---------------------------------------------------------------------------------


def backport(mark: str) -> Any:
    async def apply(answer: Any, answering: Answering) -> Any:
        return [*answer, mark]

    return apply


async def test_an_answer_passes_through_every_newer_versions_backport_newest_first() -> None:
    route = ("GET", "/v1/thing")
    versions = Versions(
        (
            ApiVersion("2027-03-01", {route: backport("to 2027-02-01")}),
            ApiVersion("2027-02-01", {("GET", "/v1/other"): backport("other")}),
            ApiVersion("2027-01-01", {route: backport("to 2026-12-01")}),
            ApiVersion("2026-12-01"),
        )
    )
    oldest = versions.known("2026-12-01")
    assert oldest is not None
    answer: Any = []
    for step in versions.backports(oldest, route):
        answer = await step(answer, None)  # type: ignore[arg-type]
    assert answer == ["to 2027-02-01", "to 2026-12-01"]
    middle = versions.known("2027-02-01")
    assert middle is not None
    assert len(versions.backports(middle, route)) == 1
    assert versions.backports(versions.latest, route) == []


@pytest.mark.parametrize(
    "listed",
    [
        ("2026-11-30", "2026-12-01"),  # oldest first
        ("2026-12-01", "2026-12-01"),  # twice
        ("December",),
    ],
)
def test_the_registry_refuses_a_muddled_list(listed: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Versions(tuple(ApiVersion(name) for name in listed))


def test_the_newest_version_cannot_be_deprecated() -> None:
    with pytest.raises(ValueError):
        Versions((ApiVersion("2026-12-01", deprecated=date(2026, 12, 1)),))
