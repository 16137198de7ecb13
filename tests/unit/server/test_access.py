"""Organisations, members, roles, tokens, devices and the audit log, through the real API.

What the permission matrix cannot see: the rules inside a permission (an admin deals in no
owners, an organisation keeps an owner, a token is no stronger than its maker), what removing a
member takes away, and what the audit log holds.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from tests.unit.server.harness import Server, error_body, running_server

from fap.api import (
    AUDIT,
    DEVICE,
    DEVICES,
    INVITATIONS,
    JOB_RESULT_URL,
    ME,
    MEMBER,
    MEMBER_ROLE,
    MEMBERS,
    ORG,
    ORG_ACCESS,
    ORG_HEADER,
    ORGS,
    STATUS,
    TOKEN,
    TOKENS,
    UPLOAD,
    UPLOADS,
    AuditList,
    DeviceList,
    Invitation,
    Me,
    MemberList,
    Membership,
    OrgAccessInfo,
    OrgCreate,
    OrgInfo,
    RoleChange,
    TokenCreate,
    TokenCreated,
    TokenList,
    UploadInfo,
)
from fap.server.store import Identity

ORG_NAME = "acme"


async def acme(server: Server) -> str:
    """Organisation acme, made by a signed-in user: their token."""
    owner, _ = await server.new_org(ORG_NAME)
    return owner


async def token(server: Server, maker: str, role: str, **fields: object) -> TokenCreated:
    return await server.ok(
        "POST",
        TOKENS.format(org=ORG_NAME),
        maker,
        TokenCreate(name=f"{role} token", role=role, **fields),  # type: ignore[arg-type]
        returns=TokenCreated,
    )


async def test_a_signed_in_user_creates_an_organisation_and_owns_it(server: Server) -> None:
    someone = await server.sign_in("founder@example.com")
    assert (await server.ok("GET", ME, someone, returns=Me)).orgs == []
    made = await server.ok("POST", ORGS, someone, OrgCreate(name="startup"), returns=OrgInfo)
    assert (made.name, made.role, made.plan) == ("startup", "owner", server.settings.default_plan)
    assert (await server.ok("GET", ME, someone, returns=Me)).orgs == [
        Membership(org="startup", role="owner")
    ]
    taken = await server.call(
        "POST", ORGS, await server.sign_in("x@example.com"), OrgCreate(name="startup")
    )
    assert taken.status_code == 409
    assert "taken" in error_body(taken).detail


@pytest.mark.parametrize("name", ["", "Upper", "-dash", "a b", "x" * 64, "ünï"])
async def test_an_organisation_name_must_be_safe_in_paths_and_shells(
    server: Server, name: str
) -> None:
    someone = await server.sign_in("founder@example.com")
    refused = await server.call("POST", ORGS, someone, OrgCreate(name=name))
    assert refused.status_code == 400
    error_body(refused)


async def test_an_api_token_creates_no_organisation(server: Server) -> None:
    refused = await server.call("POST", ORGS, server.owner, OrgCreate(name="side-project"))
    assert refused.status_code == 403


async def test_only_an_owner_deals_in_owners(server: Server) -> None:
    owner = await acme(server)
    admin = await server.new_user(ORG_NAME, "ada", "admin")
    invite_owner = await server.call(
        "POST",
        INVITATIONS.format(org=ORG_NAME),
        admin,
        Invitation(email="x@y.example", role="owner"),
    )
    assert invite_owner.status_code == 403
    promote = await server.call(
        "PUT",
        MEMBER_ROLE.format(org=ORG_NAME, member="ada@acme.example"),
        admin,
        RoleChange(role="owner"),
    )
    assert promote.status_code == 403
    remove_owner = await server.call(
        "DELETE", MEMBER.format(org=ORG_NAME, member="owner@acme.example"), admin
    )
    assert remove_owner.status_code == 403
    made = await server.call(
        "PUT",
        MEMBER_ROLE.format(org=ORG_NAME, member="ada@acme.example"),
        owner,
        RoleChange(role="owner"),
    )
    assert made.status_code == 200, made.text


async def test_an_organisation_always_keeps_an_owner(server: Server) -> None:
    owner = await acme(server)
    leave = await server.call(
        "DELETE", MEMBER.format(org=ORG_NAME, member="owner@acme.example"), owner
    )
    assert leave.status_code == 409
    assert "only owner" in error_body(leave).detail
    demote = await server.call(
        "PUT",
        MEMBER_ROLE.format(org=ORG_NAME, member="owner@acme.example"),
        owner,
        RoleChange(role="admin"),
    )
    assert demote.status_code == 409


async def test_removing_a_member_revokes_their_tokens_and_their_session_loses_the_organisation(
    server: Server,
) -> None:
    owner = await acme(server)
    member = await server.new_user(ORG_NAME, "mo", "member")
    ci = await token(server, member, "member")
    assert (await server.call("GET", STATUS, ci.token)).status_code == 200
    gone = await server.call("DELETE", MEMBER.format(org=ORG_NAME, member="mo@acme.example"), owner)
    assert gone.status_code == 204, gone.text
    assert (await server.call("GET", STATUS, ci.token)).status_code == 401
    named = await server.http.get(
        STATUS, headers={"Authorization": f"Bearer {member}", ORG_HEADER: ORG_NAME}
    )
    assert named.status_code == 404
    assert (await server.call("GET", STATUS, member)).status_code == 403  # in no organisation now
    listed = await server.ok("GET", MEMBERS.format(org=ORG_NAME), owner, returns=MemberList)
    assert "mo@acme.example" not in {m.email for m in listed.members}


async def test_a_token_is_no_stronger_than_its_maker(server: Server) -> None:
    await acme(server)
    member = await server.new_user(ORG_NAME, "mo", "member")
    for role in ("admin", "owner", "processor"):
        refused = await server.call(
            "POST",
            TOKENS.format(org=ORG_NAME),
            member,
            TokenCreate(name="t", role=role),  # type: ignore[arg-type]
        )
        assert refused.status_code == 403, role
    viewer_token = await token(server, member, "viewer")
    upload = await server.call(
        "POST", UPLOADS, viewer_token.token, {"name": "a", "size": 1, "sha256": "0" * 64}
    )
    assert upload.status_code == 403
    assert "viewer" in error_body(upload).detail


async def test_members_see_their_own_tokens_and_admins_see_all(server: Server) -> None:
    owner = await acme(server)
    member = await server.new_user(ORG_NAME, "mo", "member")
    mine = await token(server, member, "member")
    theirs = await token(server, owner, "viewer")
    seen_by_member = await server.ok("GET", TOKENS.format(org=ORG_NAME), member, returns=TokenList)
    assert {t.id for t in seen_by_member.tokens} == {mine.id}
    seen_by_owner = await server.ok("GET", TOKENS.format(org=ORG_NAME), owner, returns=TokenList)
    assert {mine.id, theirs.id} <= {t.id for t in seen_by_owner.tokens}
    foreign = await server.call("DELETE", TOKEN.format(org=ORG_NAME, token_id=theirs.id), member)
    assert foreign.status_code == 404
    revoked = await server.call("DELETE", TOKEN.format(org=ORG_NAME, token_id=mine.id), member)
    assert revoked.status_code == 204
    assert (await server.call("GET", STATUS, mine.token)).status_code == 401


async def test_an_expiring_token_stops_working_when_it_expires(server: Server) -> None:
    owner = await acme(server)
    short = await token(server, owner, "member", expires_in=3600.0)
    assert short.expires_at == pytest.approx(server.clock() + 3600.0)
    assert (await server.call("GET", STATUS, short.token)).status_code == 200
    server.clock.advance(3601)
    assert (await server.call("GET", STATUS, short.token)).status_code == 401
    for bad in (0.0, -1.0, 10 * 366 * 24 * 3600.0):
        refused = await server.call(
            "POST",
            TOKENS.format(org=ORG_NAME),
            await acme_owner(server),
            TokenCreate(name="t", role="member", expires_in=bad),
        )
        assert refused.status_code == 400, bad


async def acme_owner(server: Server) -> str:
    """The owner's session, renewed: the clock may have moved past the first one's minutes."""
    return await server.sign_in("owner@acme.example")


async def test_a_user_in_several_organisations_names_one(server: Server) -> None:
    await acme(server)
    both = await server.new_user(ORG_NAME, "bo", "member")
    other, _ = await server.new_org("other")
    await server.ok(
        "POST",
        INVITATIONS.format(org="other"),
        other,
        Invitation(email="bo@acme.example"),
        returns=dict,
    )
    both = await server.sign_in("bo@acme.example")  # joins "other" by its invitation
    unnamed = await server.call("GET", STATUS, both)
    assert unnamed.status_code == 400
    assert "acme, other" in error_body(unnamed).detail
    for name in ("acme", "other"):
        named = await server.http.get(
            STATUS, headers={"Authorization": f"Bearer {both}", ORG_HEADER: name}
        )
        assert named.status_code == 200


async def test_a_revoked_device_gets_no_new_results(server: Server) -> None:
    member = await server.new_user(None, "mo", "member")
    kept = await server.register_device(member)
    dropped = await server.register_device(member)
    devices = await server.ok("GET", DEVICES, member, returns=DeviceList)
    dropped_id = next(d.id for d in devices.devices if d.recipient == dropped.recipient)
    assert (
        await server.call("DELETE", DEVICE.format(device_id=dropped_id), member)
    ).status_code == 204
    again = await server.call("DELETE", DEVICE.format(device_id=dropped_id), member)
    assert again.status_code == 404
    await server.upload(member, b"report")
    lease = await server.lease()
    assert lease is not None
    assert lease.recipients == [kept.recipient]


async def test_every_change_is_audited_without_a_secret(server: Server) -> None:
    owner = await acme(server)
    await server.new_user(ORG_NAME, "mo", "member")
    made = await token(server, owner, "viewer")
    await server.call("DELETE", TOKEN.format(org=ORG_NAME, token_id=made.id), owner)
    await server.call(
        "PUT",
        MEMBER_ROLE.format(org=ORG_NAME, member="mo@acme.example"),
        owner,
        RoleChange(role="viewer"),
    )
    await server.call("DELETE", MEMBER.format(org=ORG_NAME, member="mo@acme.example"), owner)
    log = await server.ok("GET", AUDIT.format(org=ORG_NAME), owner, returns=AuditList)
    actions = [event.action for event in reversed(log.events)]
    assert actions == [
        "org.create",
        "token.create",  # the processor token new_org made
        "member.invite",
        "member.join",
        "token.create",
        "token.revoke",
        "member.role",
        "member.remove",
    ]
    assert all(event.actor for event in log.events)
    raw = msgspec.json.encode(log).decode()
    assert made.token not in raw and "fap_" not in raw
    member = await server.new_user(ORG_NAME, "vi", "viewer")
    assert (await server.call("GET", AUDIT.format(org=ORG_NAME), member)).status_code == 403


async def test_deleting_an_organisation_ends_its_tokens_and_keeps_its_name(server: Server) -> None:
    owner = await acme(server)
    ci = await token(server, owner, "member")
    assert (await server.call("DELETE", ORG.format(org=ORG_NAME), owner)).status_code == 204
    assert (await server.call("GET", STATUS, ci.token)).status_code == 401
    assert (await server.ok("GET", ME, owner, returns=Me)).orgs == []
    again = await server.call("POST", ORGS, owner, OrgCreate(name=ORG_NAME))
    assert again.status_code == 409


async def test_a_removed_members_unfinished_uploads_fail_and_get_no_result(server: Server) -> None:
    member = await server.new_user(None, "mo", "member")
    leased = await server.upload(member, b"first")
    lease = await server.lease()
    assert lease is not None and lease.job_id == leased.id
    waiting = await server.create_upload(member, b"second chunk data")  # pending: no chunk yet
    gone = await server.call(
        "DELETE", MEMBER.format(org="local", member="mo@local.example"), server.owner
    )
    assert gone.status_code == 204, gone.text
    for upload_id in (leased.id, waiting.upload.id):
        info = await server.ok(
            "GET", UPLOAD.format(upload_id=upload_id), server.owner, returns=UploadInfo
        )
        assert info.state == "failed"
        assert "removed from the organisation" in (info.error or "")
    # The worker holding the lease can seal nothing for the removed member any more.
    refused = await server.call(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        {"lease_token": lease.lease_token, "size": 1, "sha256": "0" * 64},
    )
    assert refused.status_code == 409


COMMON = "https://login.microsoftonline.com/common/v2.0"
TENANT = "https://login.microsoftonline.com/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/v2.0"


@pytest.mark.parametrize("listed", [COMMON, TENANT])
async def test_an_organisation_may_trust_a_microsoft_tenant_or_all_of_them(
    tmp_path: Path, listed: str
) -> None:
    async with running_server(tmp_path / "data", oidc=(f"{COMMON}=app",)) as server:
        access = OrgAccessInfo(issuers=[listed], domains={"contoso.com": "member"})
        await server.ok("PUT", ORG_ACCESS.format(org="local"), server.owner, access, returns=dict)
        accounts, now = server.services.store.accounts, server.clock()
        # A token of the tenant names the tenant's issuer; the configured one vouches for it.
        ana = Identity(TENANT, "ana", "ana@contoso.com", True, "Ana", vouched_by=(COMMON,))
        assert (await accounts.sign_in(ana, None, now)).joined == (("local", "member"),)
        stranger = "https://login.microsoftonline.com/99999999-4e5f-4a6b-8c7d-9e0f1a2b3c4d/v2.0"
        bo = Identity(stranger, "bo", "bo@contoso.com", True, "Bo", vouched_by=(COMMON,))
        joined = (await accounts.sign_in(bo, None, now)).joined
        assert joined == ((("local", "member"),) if listed == COMMON else ())
