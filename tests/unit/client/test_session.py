"""Which server and which token a command uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.client.conftest import MemoryKeyring

from fap.client import connect, load_settings, resolve_token
from fap.client.state import last_server
from fap.config import ClientSettings
from fap.errors import AuthError, ConfigError, ServerUnreachable


def test_no_server_known_is_a_clear_error(fap_home: Path) -> None:
    with pytest.raises(ConfigError, match="--server URL or set FAP_SERVER"):
        load_settings(server=None)


def test_a_server_address_needs_a_scheme(fap_home: Path) -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        load_settings(server="fap.example.com")


async def test_the_server_last_answering_becomes_the_default(fap_home: Path) -> None:
    settings = load_settings(server="http://fap.test/", token="fap_user_x")
    assert settings.server == "http://fap.test"
    async with connect(settings):
        pass
    assert last_server(fap_home) == "http://fap.test"
    assert load_settings(server=None).server == "http://fap.test"


async def test_a_server_that_never_answered_is_not_remembered(fap_home: Path) -> None:
    settings = load_settings(server="http://127.0.0.1:1", token="t", retry_for=0)
    with pytest.raises(ServerUnreachable):
        async with connect(settings) as session:
            await session.call("GET", "/healthz")
    assert last_server(fap_home) is None


def test_no_token_says_to_set_fap_token(fap_home: Path) -> None:
    settings = ClientSettings(server="http://fap.test", home=fap_home)
    with pytest.raises(AuthError, match="set FAP_TOKEN"):
        resolve_token(settings)


def test_the_token_given_wins(fap_home: Path) -> None:
    settings = ClientSettings(server="http://fap.test", token="fap_user_abc", home=fap_home)
    assert resolve_token(settings) == "fap_user_abc"


def test_without_fap_token_the_keyring_holds_the_token_per_server(
    fap_home: Path, memory_keyring: MemoryKeyring
) -> None:
    memory_keyring.set_password("fap", "http://fap.test", "fap_user_from_keyring")
    assert resolve_token(ClientSettings(server="http://fap.test", home=fap_home)) == (
        "fap_user_from_keyring"
    )
    with pytest.raises(AuthError):
        resolve_token(ClientSettings(server="http://other.test", home=fap_home))


async def test_several_replicas_are_kept_as_one_list_for_later_commands(fap_home: Path) -> None:
    settings = load_settings(server=" http://a.test/, http://b.test ", token="fap_user_x")
    assert settings.server == "http://a.test,http://b.test"
    async with connect(settings) as session:
        assert session.servers == ("http://a.test", "http://b.test")
    assert last_server(fap_home) == "http://a.test,http://b.test"
    assert load_settings(server=None).server == "http://a.test,http://b.test"


def test_every_replica_address_needs_a_scheme(fap_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"'b\.test' must start with http://"):
        load_settings(server="http://a.test,b.test")


def test_for_several_replicas_the_keyring_entry_of_the_list_or_of_a_replica_serves(
    fap_home: Path, memory_keyring: MemoryKeyring
) -> None:
    both = "http://a.test,http://b.test"
    memory_keyring.set_password("fap", "http://b.test", "fap_user_of_b")
    assert resolve_token(ClientSettings(server=both, home=fap_home)) == "fap_user_of_b"
    memory_keyring.set_password("fap", both, "fap_user_of_both")
    assert resolve_token(ClientSettings(server=both, home=fap_home)) == "fap_user_of_both"
