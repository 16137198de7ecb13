"""Who the token is, and the devices results are sealed to."""

from __future__ import annotations

from typing import cast

from litestar import Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from fap.api import DEVICES, ME, DeviceInfo, DeviceRegistration, Me, Role
from fap.crypto import check_recipient
from fap.errors import InputError
from fap.server.auth import ACCESS
from fap.server.errors import BadRequest
from fap.server.routes.deps import CallerDep, ServicesDep
from fap.server.routes.validation import check_text
from fap.server.routes.views import device_info

__all__ = ("me", "register_device")


@get(ME, opt={ACCESS: "read"})
async def me(caller: CallerDep) -> Me:
    return Me(
        user_id=caller.user.id,
        user_name=caller.user.name,
        org=caller.org.name,
        role=cast(Role, caller.role),
        default_engine=caller.org.default_engine,
        max_file_size=caller.org.max_file_size,
    )


@post(
    DEVICES,
    opt={ACCESS: "upload"},
    responses={200: ResponseSpec(DeviceInfo, description="The key was registered already.")},
)
async def register_device(
    data: JSONBody[DeviceRegistration], caller: CallerDep, services: ServicesDep
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
    device, created = await services.store.accounts.register_device(
        caller.user.id, name, recipient, services.clock()
    )
    return Response(device_info(device), status_code=201 if created else 200)
