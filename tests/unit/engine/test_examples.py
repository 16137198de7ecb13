"""The example analyzer of docs/engines.md, ``examples/python/wordcount.py``, loaded as
``fap engine --analyzer wordcount:analyze`` loads it and spoken to over the engine's HTTP routes.

(Through a real worker, a real server and the Node.js engine: tests/e2e/test_engines.py.)
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import httpx
import pytest

from fap.engine.app import EngineApp
from fap.engine.sdk import load_analyzer

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "python" / "wordcount.py"


@pytest.fixture
def wordcount(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    analyzer = load_analyzer("wordcount:analyze")
    yield sys.modules["wordcount"]
    assert analyzer is sys.modules["wordcount"].analyze
    sys.modules.pop("wordcount", None)


async def _analyze(data: bytes, piece: int = 5, name: str = "notes.txt") -> httpx.Response:
    app = EngineApp(load_analyzer("wordcount:analyze"), "wordcount@1")
    headers = {
        "Fap-Upload-Id": "up-1",
        "Fap-File-Name": quote(name, safe=""),
        "Fap-File-Size": str(len(data)),
        "Fap-File-Sha256": hashlib.sha256(data).hexdigest(),
    }

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(data), piece):
            yield data[start : start + piece]

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as client:
        return await client.post("/v1/analyze", content=body(), headers=headers)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize(
    ("text", "counts"),
    [
        ("", (0, 0, 0, 0)),
        ("hello world\nsecond line\n", (2, 4, 24, 11)),
        ("no newline at the end", (0, 5, 21, 21)),
        ("  leading\tand   trailing  \n\n", (2, 3, 28, 26)),
        ("déjà vu — 日本語のテキスト\nx\n", (2, 5, 21, 18)),
        ("one-very-long-word" * 5, (0, 1, 90, 90)),
    ],
    ids=["empty", "two-lines", "no-final-newline", "spaces", "non-ascii", "one-long-word"],
)
async def test_counts_as_wc_does_whatever_the_block_size(
    wordcount: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    block: int,
    text: str,
    counts: tuple[int, int, int, int],
) -> None:
    # Small blocks cut words, lines and UTF-8 characters at every possible place.
    monkeypatch.setattr(wordcount, "BLOCK", block)
    data = text.encode()
    answer = await _analyze(data)
    assert answer.status_code == 200, answer.text
    lines, words, chars, longest = counts
    assert answer.json() == {
        "text": True,
        "bytes": len(data),
        "lines": lines,
        "words": words,
        "chars": chars,
        "longest_line": longest,
    }


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe binary", b"text, then \x80 a stray byte" * 1000, "cut off: é".encode()[:-1]],
    ids=["binary", "stray-byte-later", "cut-off-character"],
)
async def test_a_file_that_is_not_utf8_is_an_answer_not_an_error(
    wordcount: ModuleType, data: bytes
) -> None:
    answer = await _analyze(data, piece=4096)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"text": False, "bytes": len(data)}


def test_the_guide_shows_the_example_as_it_is() -> None:
    # docs/engines.md walks through the example's code: the two must not drift apart.
    guide = (REPO / "docs" / "engines.md").read_text()
    [shown] = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    source = EXAMPLE.read_text()
    code = source[source.index("import codecs") :]
    assert shown.strip() == code.replace('__all__ = ("analyze",)\n\n', "").strip()
