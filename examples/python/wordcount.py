"""wordcount@1: the lines, words and characters of a UTF-8 text, counted as ``wc`` counts them.

    PYTHONPATH=examples/python fap engine --socket /tmp/wc.sock \\
        --analyzer wordcount:analyze --engine wordcount@1

Answers ``{"text": true, "bytes": …, "lines": …, "words": …, "chars": …, "longest_line": …}``:
``lines`` counts newline characters, ``words`` runs of non-whitespace, ``chars`` Unicode code
points, ``longest_line`` the code points of the longest line. A file that is not UTF-8 answers
``{"text": false, "bytes": …}``. The file is read in blocks, so its size does not matter.
"""

from __future__ import annotations

import codecs
from typing import BinaryIO

from fap.engine import FileMeta

__all__ = ("analyze",)

BLOCK = 1024 * 1024  # per read: read(n) waits for n bytes (or the end), so fewer, bigger reads


def analyze(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
    decoder = codecs.getincrementaldecoder("utf-8")()  # a character may span two blocks
    lines = words = chars = longest = line = 0
    in_word = False  # whether the text so far ends inside a word
    while block := stream.read(BLOCK):
        try:
            text = decoder.decode(block)
        except UnicodeDecodeError:
            # Not text. An analyzer may stop reading whenever it knows its answer.
            return {"text": False, "bytes": meta.size}
        # Words: runs of non-whitespace, less one where a run goes on from the last block.
        words += len(text.split())
        if in_word and text and not text[0].isspace():
            words -= 1
        if text:
            in_word = not text[-1].isspace()
        lines += text.count("\n")
        chars += len(text)
        # Line lengths: the first piece goes on with the last block's line.
        *ended, rest = text.split("\n")
        if ended:
            longest = max(longest, line + len(ended[0]), *map(len, ended[1:]))
            line = 0
        line += len(rest)
    try:
        decoder.decode(b"", final=True)  # a character cut off by the end of the file
    except UnicodeDecodeError:
        return {"text": False, "bytes": meta.size}
    return {
        "text": True,
        "bytes": meta.size,
        "lines": lines,
        "words": words,
        "chars": chars,
        "longest_line": max(longest, line),
    }
