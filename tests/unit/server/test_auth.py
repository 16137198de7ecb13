"""Tokens and roles: who may call what, and what another organisation's caller sees (nothing)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from tests.unit.server.harness import Server, error_body, running_server

from fap.api import (
    CHUNK_URLS,
    CHUNKS,
    JOB_HEARTBEAT,
    LEASE,
    ME,
    STATUS,
    UPLOAD,
    UPLOAD_RESULT,
    UPLOADS,
    UPLOADS_WAIT,
    Me,
    Membership,
)


async def test_healthz_needs_no_token(server: Server) -> None:
    response = await server.call("GET", "/healthz", None)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "header",
    [None, "Basic dXNlcjpwdw==", "Bearer", "Bearer not-a-fap-token", "Bearer fap_user_unknown"],
)
async def test_a_missing_or_unknown_token_is_401(server: Server, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await server.http.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error_body(response)


async def test_me_names_the_local_owner(server: Server) -> None:
    me = await server.ok("GET", ME, server.owner, returns=Me)
    assert (me.name, me.email, me.token_kind) == ("owner", None, "user")
    assert me.orgs == [Membership(org="local", role="owner")]


@pytest.mark.parametrize(("method", "path"), [("GET", ME), ("GET", UPLOADS), ("GET", STATUS)])
async def test_a_processor_token_may_not_use_client_routes(
    server: Server, method: str, path: str
) -> None:
    response = await server.call(method, path, server.processor)
    assert response.status_code == 403
    assert "Processor tokens" in error_body(response).detail


async def test_a_user_token_may_not_lease_or_run_jobs(server: Server) -> None:
    lease = await server.call(
        "POST", LEASE, server.owner, {"worker_id": "w", "engines": ["size@1"], "timeout": 0}
    )
    assert lease.status_code == 403
    assert "processor tokens" in error_body(lease).detail
    heartbeat = await server.call(
        "POST", JOB_HEARTBEAT.format(job_id="x"), server.owner, {"lease_token": "t"}
    )
    assert heartbeat.status_code == 403


async def test_a_viewer_may_read_but_not_upload(server: Server) -> None:
    viewer = await server.new_user(None, "vera", "viewer")
    assert (await server.ok("GET", ME, viewer, returns=Me)).orgs == [
        Membership(org="local", role="viewer")
    ]
    assert (await server.call("GET", UPLOADS, viewer)).status_code == 200
    assert (await server.call("GET", STATUS, viewer)).status_code == 200
    create = await server.call(
        "POST", UPLOADS, viewer, {"name": "a", "size": 1, "sha256": "0" * 64}
    )
    assert create.status_code == 403
    assert "viewer" in error_body(create).detail


@pytest.mark.parametrize("role", ["admin", "member"])
async def test_admins_and_members_may_upload(server: Server, role: str) -> None:
    token = await server.new_user(None, f"{role}-user", role)
    info = await server.upload(token, b"hello")
    assert info.state == "queued"


# A chunk-URL request any upload of these tests could take.
ONE_CHUNK = {"seq": 0, "size": 5, "sha256": "0" * 64}


async def test_another_organisations_upload_is_404_everywhere(server: Server) -> None:
    created = await server.create_upload(server.owner, b"secret" * 100)
    upload_id = created.upload.id
    stranger, stranger_processor = await server.new_org("elsewhere")
    await server.register_device(stranger)
    for method, path, body in [
        ("GET", UPLOAD.format(upload_id=upload_id), None),
        ("GET", UPLOAD_RESULT.format(upload_id=upload_id), None),
        ("POST", CHUNK_URLS.format(upload_id=upload_id), {"chunks": [ONE_CHUNK]}),
        (
            "POST",
            CHUNKS.format(upload_id=upload_id),
            {"seq": 0, "raw_size": 600, "stored_size": 600, "codec": "raw", "sha256": "0" * 64},
        ),
        ("POST", UPLOADS_WAIT, {"ids": [upload_id], "timeout": 0}),
    ]:
        response = await server.call(method, path, stranger, body)
        assert response.status_code == 404, (path, response.text)
        assert (
            upload_id[:8] in error_body(response).detail or "upload" in error_body(response).detail
        )
    # Nor is it in their list, nor leasable by their processors.
    assert (await server.call("GET", UPLOADS, stranger)).json() == {"uploads": []}
    assert await server.lease(stranger_processor) is None


async def test_another_organisations_job_is_404_for_its_processors(server: Server) -> None:
    await server.upload(server.owner, b"data")
    lease = await server.lease()
    assert lease is not None
    _, stranger_processor = await server.new_org("elsewhere")
    response = await server.call(
        "POST",
        JOB_HEARTBEAT.format(job_id=lease.job_id),
        stranger_processor,
        {"lease_token": lease.lease_token},
    )
    assert response.status_code == 404


async def test_only_the_uploader_sends_chunks_and_fetches_results(server: Server) -> None:
    created = await server.create_upload(server.owner, b"x" * 10)
    colleague = await server.new_user(None, "colin", "member")
    upload_id = created.upload.id
    urls = await server.call(
        "POST", CHUNK_URLS.format(upload_id=upload_id), colleague, {"chunks": [ONE_CHUNK]}
    )
    assert urls.status_code == 403
    # Reading it is fine: it is their organisation's upload.
    assert (
        await server.call("GET", UPLOAD.format(upload_id=upload_id), colleague)
    ).status_code == 200
    result = await server.call("GET", UPLOAD_RESULT.format(upload_id=upload_id), colleague)
    assert result.status_code == 403
    assert "sealed" in error_body(result).detail


async def test_the_first_start_writes_both_tokens_0600_and_a_restart_keeps_them(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with running_server(data) as first:
        owner, processor = first.owner, first.processor
    assert owner.startswith("fap_user_") and processor.startswith("fap_processor_")
    for name in ("local-owner.token", "local-processor.token"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    async with running_server(data) as second:
        assert (second.owner, second.processor) == (owner, processor)
        assert (await second.call("GET", ME, owner)).status_code == 200


async def test_tokens_are_stored_only_as_hashes(server: Server) -> None:
    database = (server.settings.data_dir / "fap.db").read_bytes()
    for wal in server.settings.data_dir.glob("fap.db-wal"):
        database += wal.read_bytes()
    assert server.owner.encode() not in database
    assert server.processor.encode() not in database
