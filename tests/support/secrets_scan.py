"""No secret in any log: the secrets a test run used, and a search of its logs for each of them.

A test (or a fixture at its teardown) collects what the run used — tokens and keys from the data
dirs and FAP_HOMEs, lease tokens from the server's database, signatures from URLs it saw, storage
keys from an environment — then searches every log for each value, and for the shapes a secret
has whatever its value (``sig=<hex>``, ``X-Amz-Signature=``, ``lease_token``, an age identity, a
fap token, a ``Bearer`` header, a JWT, an OAuth refresh token or device code). The shapes catch a secret nobody thought to collect.

    scan = SecretScan()
    scan.add_tree(tmp_path)                # token files, device keys, SQLite lease tokens
    scan.add_database(pg_url)              # lease tokens kept in PostgreSQL
    scan.add_env(storage.env)              # AWS_SECRET_ACCESS_KEY…
    scan.add_url(presigned_url, "a result URL")
    scan.check(logs_under(tmp_path))       # AssertionError naming each leak, values masked
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

__all__ = ("Leak", "SecretScan", "logs_under")

# Shorter values would match by chance; every real secret here is 20 characters or more.
_MIN_LENGTH = 12
# Query parameters that are secrets: fap's blob signature, S3's SigV4 signature and session token.
_SECRET_PARAMS = ("sig", "X-Amz-Signature", "X-Amz-Security-Token", "Signature")
# Environment variables whose values are secrets.
_SECRET_ENV = re.compile(r"(?i)(secret|token|password|key)$")
_AWS_KEY_ID = "AWS_ACCESS_KEY_ID"  # an identifier, not a secret; its secret is the other one
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a blob URL signature (sig=…)", re.compile(r"[?&]sig=[0-9a-fA-F]{16,}")),
    ("an S3 signature (X-Amz-Signature)", re.compile(r"(?i)x-amz-signature=\w{16,}")),
    ("an S3 credential (X-Amz-Credential)", re.compile(r"(?i)x-amz-credential=\w{8,}")),
    ("an S3 session token (X-Amz-Security-Token)", re.compile(r"(?i)x-amz-security-token=\S")),
    ("a SigV4 Authorization header", re.compile(r"Signature=[0-9a-f]{16,}")),
    # The name alone too: a line naming the column or the field is a line about to show one.
    # Only what fap's redaction wrote ("lease_token=[hidden]") passes.
    ("a lease token (lease_token)", re.compile(r"lease_token(?![\"']?\s*[:=]\s*[\"']?\[hidden\])")),
    ("an age identity (AGE-SECRET-KEY-…)", re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{10,}")),
    ("a fap token (fap_<kind>_…)", re.compile(r"\bfap_[a-z]+_[A-Za-z0-9_-]{20,}")),
    ("a Bearer credential", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9_.~+/-]{12,}")),
    # An identity provider's token (an ID token, its access token): a signed JWT, whose header
    # and claims both start as base64 of '{"'.
    ("a JWT (an ID token)", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    (
        "an OAuth refresh or device code (refresh_token, device_code)",
        re.compile(r"(refresh_token|device_code)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_-]{16,}"),
    ),
)


@dataclass(frozen=True)
class Leak:
    log: str
    line_number: int
    what: str
    line: str  # with every known secret masked, so the report does not leak it again

    def __str__(self) -> str:
        return f"{self.log}:{self.line_number}: {self.what}: {self.line[:300]}"


@dataclass
class SecretScan:
    """The secret values one run used (value → what it is), and the search of logs for them."""

    secrets: dict[str, str] = field(default_factory=dict)

    def add(self, value: str, what: str) -> None:
        value = value.strip()
        if len(value) >= _MIN_LENGTH:
            self.secrets.setdefault(value, what)

    def add_url(self, url: str, what: str = "a presigned URL") -> None:
        """A presigned URL's signature and session token (the path is no secret)."""
        for name, value in parse_qsl(urlsplit(url).query):
            if name in _SECRET_PARAMS:
                self.add(value, f"the {name} of {what}")

    def add_env(self, env: Mapping[str, str]) -> None:
        for name, value in env.items():
            if _SECRET_ENV.search(name) and name != _AWS_KEY_ID:
                self.add(value, f"${name}")

    def add_tree(self, root: Path) -> None:
        """Everything secret that fap keeps on disk under ``root``: the local tokens, the blob
        signing key, device keys, and the lease tokens in every SQLite ``fap.db``."""
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            if path.suffix in (".token", ".key"):
                text = path.read_text(errors="replace")
                for identity in re.findall(r"AGE-SECRET-KEY-1[0-9A-Z]+", text):
                    self.add(identity, f"the age identity in {path.name}")
                self.add(text, f"the contents of {path.name}")
            elif path.name == "fap.db":
                self.add_database(path)

    def add_database(self, db: Path | str) -> None:
        """The lease tokens a server's state store holds: a SQLite path or a PostgreSQL URL."""
        if isinstance(db, Path):
            with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
                tokens = [row[0] for row in conn.execute(_LEASE_TOKENS)]
        else:
            plain = db.replace("postgresql+asyncpg://", "postgresql://")
            done = subprocess.run(
                ["psql", "--no-psqlrc", "-At", "-c", _LEASE_TOKENS, plain],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
            tokens = done.stdout.split()
        for token in tokens:
            if token:
                self.add(token, "a lease token")

    def leaks(self, name: str, text: str) -> list[Leak]:
        found = []
        for number, line in enumerate(text.splitlines(), start=1):
            what = [what for value, what in self.secrets.items() if value in line]
            what += [what for what, shape in _SHAPES if shape.search(line)]
            if what:
                found.append(Leak(name, number, ", ".join(dict.fromkeys(what)), self._mask(line)))
        return found

    def check(self, logs: Mapping[str, str]) -> None:
        """Fail, naming every leaking line, if any log holds a secret or a secret's shape."""
        found = [leak for name, text in logs.items() for leak in self.leaks(name, text)]
        assert not found, f"{len(found)} log lines hold secrets:\n" + "\n".join(
            map(str, found[:20])
        )

    def _mask(self, line: str) -> str:
        for value in self.secrets:
            line = line.replace(value, "<secret>")
        return line


_LEASE_TOKENS = "SELECT lease_token FROM uploads WHERE lease_token IS NOT NULL"


def logs_under(root: Path, extra: Iterable[Path] = ()) -> dict[str, str]:
    """Every ``*.log`` under ``root`` (where the process helpers write them), by relative name."""
    paths = [*sorted(root.rglob("*.log")), *extra]
    return {
        str(path.relative_to(root) if path.is_relative_to(root) else path): path.read_text(
            errors="replace"
        )
        for path in paths
        if path.is_file()
    }
