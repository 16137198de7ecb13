"""Failover across server replicas: which replica a request goes to, and how long it keeps trying."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import msgspec
import pytest

from fap.api import ApiSession, DeviceRegistration, Me, parse_servers
from fap.api import session as session_module
from fap.backoff import Backoff
from fap.errors import ConfigError, ServerError, ServerUnreachable

A, B, C = "http://a.test:8700", "http://b.test:8700", "http://c.test:8700"
ME = {
    "user_id": "u",
    "name": "owner",
    "email": None,
    "orgs": [{"org": "local", "role": "owner"}],
    "token_kind": "user",
}

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Replicas:
    """Replicas by host: each answers, fails to connect, or answers a status; every request seen."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        self.down: set[str] = set()
        self.status: dict[str, int] = {}
        self.gate: dict[str, asyncio.Event] = {}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append((host, request.url.path, request.content))
        if gate := self.gate.get(host):
            await gate.wait()
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if status := self.status.get(host):
            return httpx.Response(status, json={"status_code": status, "detail": "Not now."})
        return httpx.Response(200, json=ME)

    def hosts(self) -> list[str]:
        return [host for host, _, _ in self.seen]

    def session(self, servers: str, retry_for: float = 5.0) -> ApiSession:
        return ApiSession(
            servers, "fap_user_x", retry_for=retry_for, transport=httpx.MockTransport(self.handle)
        )


@pytest.fixture
def replicas() -> Replicas:
    return Replicas()


def test_the_server_may_be_several_replicas_comma_separated() -> None:
    assert parse_servers(f" {A}/ , {B},,{A}") == (A, B)
    assert parse_servers(A) == (A,)
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        parse_servers(f"{A},b.test:8700")
    with pytest.raises(ConfigError, match="No server address"):
        parse_servers(" , ")


async def test_requests_stay_with_the_first_replica_while_it_answers(replicas: Replicas) -> None:
    async with replicas.session(f"{A},{B}") as session:
        for _ in range(3):
            assert (await session.call("GET", "/v1/me", returns=Me)).name == "owner"
    assert replicas.hosts() == ["a.test"] * 3


async def test_a_replica_that_refuses_connections_hands_over_to_the_next_and_stays_there(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pause between replicas of the first round would last an hour and end the test.
    monkeypatch.setattr(session_module, "_BETWEEN_ROUNDS", Backoff(3600, 3600, jitter=False))
    replicas.down.add("a.test")
    async with replicas.session(f"{A},{B}", retry_for=7200) as session:
        async with asyncio.timeout(60):
            await session.call("GET", "/v1/me", returns=Me)
        assert session.server == B
        await session.call("GET", "/v1/me", returns=Me)
    assert replicas.hosts() == ["a.test", "b.test", "b.test"]


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_gateway_error_or_unavailable_replica_hands_over(
    replicas: Replicas, status: int
) -> None:
    replicas.status["a.test"] = status
    async with replicas.session(f"{A},{B}") as session:
        await session.call("GET", "/v1/me", returns=Me)
    assert replicas.hosts() == ["a.test", "b.test"]


@pytest.mark.parametrize("status", [400, 404, 409, 500])
async def test_an_answer_that_is_no_outage_is_final(replicas: Replicas, status: int) -> None:
    replicas.status["a.test"] = status
    async with replicas.session(f"{A},{B}") as session:
        with pytest.raises(ServerError):
            await session.call("GET", "/v1/me", returns=Me)
    assert replicas.hosts() == ["a.test"]


async def test_replicas_take_turns_round_robin(replicas: Replicas) -> None:
    async with replicas.session(f"{A},{B},{C}") as session:
        replicas.down.add("a.test")
        await session.call("GET", "/v1/me", returns=Me)
        replicas.down = {"b.test"}
        await session.call("GET", "/v1/me", returns=Me)
        replicas.down = {"c.test"}
        await session.call("GET", "/v1/me", returns=Me)
    assert replicas.hosts() == ["a.test", "b.test", "b.test", "c.test", "c.test", "a.test"]


async def test_the_same_body_goes_to_the_next_replica(replicas: Replicas) -> None:
    replicas.down.add("a.test")
    body = DeviceRegistration(name="laptop", recipient="age1xyz")
    async with replicas.session(f"{A},{B}") as session:
        await session.call("POST", "/v1/devices", body)
    assert [(host, path) for host, path, _ in replicas.seen] == [
        ("a.test", "/v1/devices"),
        ("b.test", "/v1/devices"),
    ]
    assert {content for _, _, content in replicas.seen} == {msgspec.json.encode(body)}


async def test_requests_failing_together_do_not_skip_a_live_replica(replicas: Replicas) -> None:
    replicas.down.add("a.test")
    replicas.gate["a.test"] = asyncio.Event()
    async with replicas.session(f"{A},{B},{C}") as session:
        calls = [asyncio.create_task(session.call("GET", "/v1/me", returns=Me)) for _ in range(8)]
        while len(replicas.seen) < 8:
            await asyncio.sleep(0.01)
        replicas.gate["a.test"].set()  # all eight fail on a at once
        await asyncio.gather(*calls)
        assert session.server == B
    assert replicas.hosts().count("b.test") == 8
    assert "c.test" not in replicas.hosts()


async def test_with_every_replica_down_it_gives_up_after_the_retry_budget(
    replicas: Replicas,
) -> None:
    replicas.down.update({"a.test", "b.test"})
    async with replicas.session(f"{A},{B}", retry_for=1.0) as session:
        started = time.monotonic()
        with pytest.raises(ServerUnreachable) as raised:
            await session.call("GET", "/v1/me", returns=Me)
        elapsed = time.monotonic() - started
    assert 0.2 < elapsed <= 1.5
    assert str(raised.value) == (
        f"None of the servers {A}, {B} answered (last: ConnectError) for 1 s; "
        "check that they are running and that the addresses are right."
    )
    hosts = replicas.hosts()
    assert len(hosts) >= 4  # more than one round
    assert hosts[::2] == ["a.test"] * len(hosts[::2])  # taking turns
    assert hosts[1::2] == ["b.test"] * len(hosts[1::2])


async def test_a_zero_budget_still_tries_every_replica_once(replicas: Replicas) -> None:
    replicas.down.update({"a.test", "b.test", "c.test"})
    async with replicas.session(f"{A},{B},{C}", retry_for=0) as session:
        with pytest.raises(ServerUnreachable):
            await session.call("GET", "/v1/me", returns=Me)
    assert replicas.hosts() == ["a.test", "b.test", "c.test"]
    replicas.seen.clear()
    replicas.down = {"a.test"}
    async with replicas.session(f"{A},{B}", retry_for=0) as session:
        await session.call("GET", "/v1/me", returns=Me)
    assert replicas.hosts() == ["a.test", "b.test"]


async def test_one_server_keeps_its_message_and_backoff(replicas: Replicas) -> None:
    replicas.status["a.test"] = 503
    async with replicas.session(A, retry_for=0.5) as session:
        with pytest.raises(ServerUnreachable) as raised:
            await session.call("GET", "/v1/me", returns=Me)
    assert str(raised.value) == (
        f"The server at {A} did not answer (status 503) for 0.5 s; "
        "check that it is running and that the address is right."
    )
    assert 1 <= len(replicas.hosts()) <= 3  # backed off between tries, no hammering
