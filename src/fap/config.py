"""Settings of every role, loaded once at the CLI edge and passed down.

Precedence: built-in defaults < the config file (``config.toml`` in the fap home, one table per
role) < ``FAP_*`` environment variables < command-line flags. Typer resolves flags and environment
variables; :func:`build` lays them over the file and the defaults.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from fap.api.limits import DEFAULT_CHUNK_SIZE
from fap.api.paths import CLIENT_RELEASE
from fap.durations import parse_duration
from fap.errors import ConfigError
from fap.issuers import TrustedIssuer, parse_trusted_issuers
from fap.sizes import parse_size

__all__ = (
    "ClientSettings",
    "ServerSettings",
    "WorkerSettings",
    "build",
    "fap_home",
    "load_config_file",
)

MiB = 1024 * 1024
GiB = 1024 * MiB


def fap_home() -> Path:
    """Where the client keeps its state (journal, config, key fallback); ``FAP_HOME`` moves it all."""
    if home := os.environ.get("FAP_HOME"):
        return Path(home).expanduser()
    return Path(platformdirs.user_state_dir("fap", appauthor=False))


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path = Path("fap-data")
    host: str = "127.0.0.1"
    port: int = 8700
    # Base of the presigned URLs of the local blob store; clients must reach it. Default: host:port.
    public_url: str | None = None
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    max_attempts: int = 3
    url_ttl_seconds: int = 900
    max_file_size: int = 64 * GiB
    default_engine: str = "size@1"
    # The plan (server/auth/plans.py) of organisations that signed-in users create.
    default_plan: str = "team"
    # The identity providers users sign in with: ISSUER=CLIENT_ID items (``--oidc``, FAP_OIDC).
    oidc: tuple[str, ...] = ()
    long_poll_seconds: float = 20.0
    sweep_seconds: float = 1.0
    # Where state lives: "" is SQLite in the data dir; or sqlite:///PATH, postgresql+asyncpg://…
    db: str = ""
    # Where blobs live: "" is the data dir's blobs/; or file:///PATH, s3://BUCKET[/PREFIX]?endpoint=…
    storage: str = ""
    # Where server secrets come from besides env/file: "" or aws-sm://SECRET_ID[?region=…]
    secrets: str = ""
    # The clean-up (server/cleanup.py): how often it runs; how long an upload may go without a
    # chunk before it counts as abandoned; how long sealed results are kept. 0 turns each off.
    cleanup_seconds: float = 300.0
    abandon_after: float = 24 * 3600.0
    keep_results: float = 30 * 24 * 3600.0
    # The newest client release (X.Y.Z) answers advertise in Fap-Client-Latest, so that older
    # clients tell their users once a day; "": this server's own version.
    client_latest: str = ""

    def __post_init__(self) -> None:
        if self.client_latest and not CLIENT_RELEASE.fullmatch(self.client_latest):
            raise ConfigError(
                f"The newest client release must be digits and dots, such as 1.4.0; "
                f"{self.client_latest[:40]!r} is not."
            )

    @property
    def trusted_issuers(self) -> tuple[TrustedIssuer, ...]:
        return parse_trusted_issuers(self.oidc)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class ClientSettings:
    server: str = ""
    token: str | None = None
    # The organisation commands act in (``--org``, FAP_ORG); None: the user's only one.
    org: str | None = None
    home: Path = field(default_factory=fap_home)
    retry_for: float = 30.0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    parallel_puts: int = 4
    settle_seconds: float = 1.0
    # A file holding the API token (FAP_TOKEN_FILE), for a service where no keyring answers.
    token_file: Path | None = None


@dataclass(frozen=True)
class WorkerSettings:
    server: str = ""
    token: str | None = None
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    engine_command: tuple[str, ...] = ()  # empty: this installation's ``fap engine``
    retry_for: float = 30.0
    prefetch_chunks: int = 4
    # Seconds the engine may take over one file, not counting waits for the uploader's chunks.
    job_timeout: float = 3600.0
    # The engine's sandbox and limits (docs/sandbox.md). Sizes in bytes, 0 for no limit: the
    # address space of each of its processes (also the largest file it may write, and the size of
    # its private /tmp); its CPU seconds per job; the JSON answer it may send back.
    engine_memory: int = 4 * GiB
    engine_cpu_seconds: float = 3600.0
    result_max_bytes: int = 256 * MiB
    # Processes (threads count too) an engine's sandbox may hold; the config file only.
    engine_max_processes: int = 256
    engine_mounts: tuple[str, ...] = ()  # paths made visible read-only inside the sandbox
    engine_env: tuple[str, ...] = ()  # KEY=VALUE items of the engine's environment
    engine_devices: tuple[str, ...] = ()  # device nodes (a GPU) the engine may use
    # Refuse to start where bubblewrap cannot sandbox the engine, rather than run with rlimits alone.
    require_sandbox: bool = False


S = TypeVar("S", ServerSettings, ClientSettings, WorkerSettings)

_SECTIONS: dict[type[Any], str] = {
    ServerSettings: "server",
    ClientSettings: "client",
    WorkerSettings: "worker",
}


_DURATIONS = ("cleanup_seconds", "abandon_after", "keep_results")
# Sizes, and whether 0 ("unlimited") may be one.
_SIZES = {"engine_memory": True, "result_max_bytes": False}
_LISTS = ("engine_mounts", "engine_env", "engine_devices")


def _fits(value: object, hint: Any, *, parsed: bool) -> bool:
    """Whether a TOML ``value`` can stand for a setting declared ``hint`` (durations and sizes
    may be text, "24h", "512M", for their parsers to read)."""
    if parsed:
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (types.UnionType, typing.Union)
        else (hint,)
    )
    for option in options:
        if option is type(None):
            continue
        origin = typing.get_origin(option) or option
        if origin is tuple:  # a list of text in TOML (or one text)
            if isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(item, str) for item in value)
            ):
                return True
        elif origin is bool:
            if isinstance(value, bool):
                return True
        elif origin is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return math.isfinite(value)
        elif origin is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif origin in (str, Path):
            if isinstance(value, str):
                return True
        else:
            return True  # a type the file cannot spell wrongly here: its class checks it
    return False


def _options(hint: Any) -> tuple[Any, ...]:
    """The types ``hint`` allows: a union's members, or itself."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return typing.get_args(hint)
    return (hint,)


def _kind(hint: Any) -> str:
    first = next(option for option in _options(hint) if option is not type(None))
    origin = typing.get_origin(first) or first
    words = {str: "text", Path: "a path (text)", int: "a whole number", float: "a number"}
    words |= {bool: "true or false", tuple: "a list of text"}
    return words.get(origin, f"a {getattr(origin, '__name__', origin)}")


def load_config_file(path: Path | None = None) -> dict[str, Any]:
    path = path or fap_home() / "config.toml"
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"The config file {path} cannot be read: {error}.") from error


def build(cls: type[S], config_file: Path | None = None, **overrides: Any) -> S:
    """Settings of one role: the file's table for it, then every override that is not None."""
    section = load_config_file(config_file).get(_SECTIONS[cls], {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for name, value in section.items():
        if name not in known:
            raise ConfigError(
                f"The config file sets {_SECTIONS[cls]}.{name}, which fap does not know."
            )
        if not _fits(value, hints[name], parsed=name in _DURATIONS or name in _SIZES):
            raise ConfigError(
                f"The config file sets {_SECTIONS[cls]}.{name} to {value!r}, which is not "
                f"{_kind(hints[name])}."
            )
        values[name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name in ("data_dir", "home", "token_file"):
        if name in values:
            values[name] = Path(values[name]).expanduser()
    for name in ("engine_command", "oidc", *_LISTS):  # lists in TOML, tuples in settings
        if name in values:
            value = values[name]
            values[name] = (value,) if isinstance(value, str) else tuple(value)
    for name in _DURATIONS:
        if name in values:  # the config file may write durations as "24h", "30d"
            values[name] = parse_duration(values[name], f"{_SECTIONS[cls]}.{name}")
    for name, unlimited in _SIZES.items():
        if name in values:  # and sizes as "512M", "2G"
            values[name] = parse_size(values[name], f"{_SECTIONS[cls]}.{name}", unlimited=unlimited)
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"Invalid {_SECTIONS[cls]} settings: {error}.") from error
