"""Devices: the age public keys results are sealed to; registering one again is harmless."""

from __future__ import annotations

from tests.unit.server.harness import Server, both_backends, error_body

from fap.api import DEVICES, DeviceInfo
from fap.crypto import DeviceIdentity

pytestmark = both_backends


async def test_registering_a_key_is_idempotent(server: Server) -> None:
    key = DeviceIdentity.generate().recipient
    first = await server.call("POST", DEVICES, server.owner, {"name": "laptop", "recipient": key})
    again = await server.call("POST", DEVICES, server.owner, {"name": "laptop", "recipient": key})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert DeviceInfo(**first.json()).recipient == key


async def test_every_device_of_the_uploader_gets_the_result(server: Server) -> None:
    identities = [DeviceIdentity.generate() for _ in range(2)]
    keys = [identity.recipient for identity in identities]
    for number, key in enumerate(keys):
        await server.call("POST", DEVICES, server.owner, {"name": f"d{number}", "recipient": key})
    server.devices[server.owner] = identities[0]
    created = await server.create_upload(server.owner, b"x")
    await server.send_chunk(server.owner, created, b"x", 0)
    lease = await server.lease()
    assert lease is not None and lease.recipients == keys


async def test_a_key_that_is_not_an_age_public_key_is_400(server: Server) -> None:
    for recipient in ["", "age1nope", "AGE-SECRET-KEY-1XYZ", "x" * 500]:
        response = await server.call(
            "POST", DEVICES, server.owner, {"name": "laptop", "recipient": recipient}
        )
        assert response.status_code == 400
        error_body(response)
    nameless = await server.call(
        "POST",
        DEVICES,
        server.owner,
        {"name": " ", "recipient": DeviceIdentity.generate().recipient},
    )
    assert nameless.status_code == 400
