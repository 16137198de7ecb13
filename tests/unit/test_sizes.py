"""Sizes as a command line writes them: ``2G`` is 2 GiB, a bare number is bytes."""

from __future__ import annotations

import pytest

from fap.errors import ConfigError
from fap.sizes import format_size, parse_size

KiB, MiB, GiB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("512M", 512 * MiB),
        ("2G", 2 * GiB),
        ("2g", 2 * GiB),
        ("2GB", 2 * GiB),
        ("2GiB", 2 * GiB),
        ("1.5G", 3 * GiB // 2),
        (" 64 K ", 64 * KiB),
        ("1T", 1024 * GiB),
        ("100b", 100),
        (8192, 8192),
    ],
)
def test_sizes_read_as_binary_multiples(text: str | int, size: int) -> None:
    assert parse_size(text, "--engine-memory") == size


@pytest.mark.parametrize("text", ["0", "unlimited", "none", "off", 0])
def test_no_limit_is_0_where_a_setting_allows_one(text: str | int) -> None:
    assert parse_size(text, "--engine-memory", unlimited=True) == 0


@pytest.mark.parametrize("text", ["", "G", "2X", "-1G", "two", "1e9", "unlimited", "0"])
def test_anything_else_is_one_sentence_that_names_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--result-max-bytes must be a size"):
        parse_size(text, "--result-max-bytes")


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (512 * MiB, "512 MiB"),
        (2 * GiB, "2 GiB"),
        (3 * GiB // 2, "1.5 GiB"),
        (256 * KiB, "256 KiB"),
        (1000, "1000 bytes"),
        (MiB + 1, "1048577 bytes"),
    ],
)
def test_sizes_are_said_in_the_unit_that_says_them_whole(size: int, text: str) -> None:
    assert format_size(size) == text
