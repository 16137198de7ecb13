"""Nothing secret reaches the results or the report: the run's S3 keys and fap tokens, and the
query of any URL (a presigned URL's query is its signature and names its key).

The keys and tokens are made fresh for each run and die with it, but a report is published:
every string that goes into it passes through here first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ("Redactor",)

_URL_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


@dataclass
class Redactor:
    secrets: set[str] = field(default_factory=set)

    def add(self, *secrets: str) -> None:
        self.secrets.update(secret for secret in secrets if len(secret) >= 8)

    def text(self, text: str) -> str:
        text = _URL_QUERY.sub(r"\1?…", text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def document(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` with every secret and URL query taken out of every string in it."""
        cleaned: dict[str, Any] = json.loads(self.text(json.dumps(document)))
        return cleaned
