"""The one error tree of fap.

Library code raises these; only the CLI edge turns them into ``error: <message>`` on stderr and the
exit code the class names. Messages are whole sentences: what happened, and what to do.

    FapError                      exit 1   anything fap could not do
    ├── InputError                exit 3   a local file or argument that cannot be used
    ├── ConfigError               exit 3   settings that do not make sense
    ├── AuthError                 exit 4   missing, wrong or insufficient credentials
    ├── ServerUnreachable         exit 5   no answer from the server within the retry budget
    ├── ServerError               exit 6   the server answered, but refused or failed the request
    │   └── ConflictError         exit 6   the request lost a race (a stale lease, a finished job)
    ├── IntegrityError            exit 6   bytes that do not match their checksum
    ├── EngineError               exit 8   the analysis engine crashed, hung or answered an error
    └── JobsFailed                exit 7   some files got no result
"""

from __future__ import annotations

from typing import ClassVar

__all__ = (
    "EXIT_AUTH",
    "EXIT_ENGINE",
    "EXIT_FAILURE",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_JOBS_FAILED",
    "EXIT_OK",
    "EXIT_SERVER",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "AuthError",
    "ConfigError",
    "ConflictError",
    "EngineError",
    "FapError",
    "InputError",
    "IntegrityError",
    "JobsFailed",
    "ServerError",
    "ServerUnreachable",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # Typer's own code for a malformed command line
EXIT_INPUT = 3
EXIT_AUTH = 4
EXIT_UNREACHABLE = 5
EXIT_SERVER = 6
EXIT_JOBS_FAILED = 7
EXIT_ENGINE = 8
EXIT_INTERRUPTED = 130


class FapError(Exception):
    """Something fap could not do; ``str(error)`` is the sentence shown to the user."""

    exit_code: ClassVar[int] = EXIT_FAILURE


class InputError(FapError):
    exit_code = EXIT_INPUT


class ConfigError(FapError):
    exit_code = EXIT_INPUT


class AuthError(FapError):
    exit_code = EXIT_AUTH


class ServerUnreachable(FapError):
    exit_code = EXIT_UNREACHABLE


class ServerError(FapError):
    exit_code = EXIT_SERVER

    def __init__(self, message: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def route_missing(self) -> bool:
        """The server has no such route: an older one, from before the route was added."""
        return self.status_code in (404, 405)


class ConflictError(ServerError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


class IntegrityError(FapError):
    exit_code = EXIT_SERVER


class EngineError(FapError):
    exit_code = EXIT_ENGINE


class JobsFailed(FapError):
    exit_code = EXIT_JOBS_FAILED
