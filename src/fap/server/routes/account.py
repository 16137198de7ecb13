"""Who the token is, and the devices results are sealed to."""

from __future__ import annotations

from litestar import Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from fap.api import (
    DEVICE,
    DEVICES,
    ME,
    DeviceInfo,
    DeviceList,
    DeviceRegistration,
    Me,
    Membership,
    role_named,
)
from fap.crypto import check_recipient
from fap.errors import InputError
from fap.server.auth import Permission, needs
from fap.server.errors import BadRequest, NotFound, shown_id
from fap.server.routes.deps import PersonDep, ServicesDep, actor_of, route
from fap.server.routes.request import FapRequest
from fap.server.routes.validation import check_text
from fap.server.routes.views import device_info

__all__ = ("list_devices", "me", "register_device", "revoke_device")

_SIGNED_IN = needs(Permission.SIGNED_IN)


@get(ME, opt=_SIGNED_IN)
async def me(person: PersonDep, services: ServicesDep) -> Me:
    """The user, and their organisations with their role in each (an API token: its own)."""
    user, credential = person.user, person.credential
    if credential.org is not None:
        role = credential.member_role
        orgs = [] if role is None else [Membership(org=credential.org.name, role=role_named(role))]
    else:
        orgs = [
            Membership(org=org.name, role=role)
            for org, role in await services.store.accounts.orgs_of(user.id)
        ]
    return Me(
        user_id=user.id, name=user.name, email=user.email, orgs=orgs, token_kind=credential.kind
    )


@post(
    DEVICES,
    opt=_SIGNED_IN,
    responses={200: ResponseSpec(DeviceInfo, description="The key was registered already.")},
)
async def register_device(
    request: FapRequest,
    data: JSONBody[DeviceRegistration],
    person: PersonDep,
    services: ServicesDep,
) -> Response[DeviceInfo]:
    """Register a device's age public key; registering the same key again answers the same device."""
    name = check_text(data.name, "device name", 200)
    recipient = data.recipient.strip()
    if len(recipient) > 200:
        raise BadRequest("The recipient is too long to be an age public key.")
    try:
        check_recipient(recipient)
    except InputError as error:
        raise BadRequest(str(error)) from None
    device, created = await services.store.devices.register(
        person.user.id, name, recipient, actor_of(request, person.user), services.clock()
    )
    return Response(device_info(device), status_code=201 if created else 200)


@get(DEVICES, opt=_SIGNED_IN)
async def list_devices(person: PersonDep, services: ServicesDep) -> DeviceList:
    """The user's devices, revoked ones too (they get no new results)."""
    devices = await services.store.devices.of(person.user.id)
    return DeviceList(devices=[device_info(device) for device in devices])


@delete(route(DEVICE), opt=_SIGNED_IN, status_code=204)
async def revoke_device(
    request: FapRequest, device_id: FromPath[str], person: PersonDep, services: ServicesDep
) -> None:
    """Revoke one of the user's devices: results are no longer sealed to its key."""
    revoked = await services.store.devices.revoke(
        person.user.id, device_id, actor_of(request, person.user), services.clock()
    )
    if not revoked:
        raise NotFound(f"You have no active device {shown_id(device_id)}.")
